from miroir.cli import main

raise SystemExit(main())
