// The JS client `meilisearch` 0.62 drives one flow against Miroir; tests/test_sdk_flows.py
// runs it with node (argv: url, key, corpus file) and checks the JSON printed last.
import { readFileSync } from "node:fs";
import { Meilisearch } from "meilisearch";

const [url, apiKey, corpusPath] = process.argv.slice(2);
const corpus = JSON.parse(readFileSync(corpusPath, "utf8"));
const client = new Meilisearch({ host: url, apiKey });
const wait = { timeout: 60000, interval: 50 };
const seen = {};

async function done(enqueued) {
  const task = await enqueued.waitTask(wait);
  if (task.status !== "succeeded") throw new Error(`task failed: ${JSON.stringify(task)}`);
  return task;
}

const uid = "js_movies";
await done(client.createIndex(uid, { primaryKey: "id" }));
const index = client.index(uid);
await done(index.updateSettings(corpus.settings));
await done(index.addDocuments(corpus.json, { customMetadata: "json-batch" }));
await done(index.addDocumentsFromString(corpus.ndjson, "application/x-ndjson"));
await done(index.addDocumentsFromString(corpus.csv, "text/csv"));
seen.documents = (await index.getDocuments({ limit: 100 })).results;

seen.search = await index.search(
  "star",
  {
    facets: ["genre"], sort: ["year:desc"], attributesToHighlight: ["title"],
    attributesToCrop: ["overview"], cropLength: 5, hitsPerPage: 4, page: 2,
    showPerformanceDetails: true,
  },
  { headers: { "Meili-Include-Metadata": "true" } },
);

seen.multi = await client.multiSearch({
  queries: [
    { indexUid: uid, q: "star", limit: 3 },
    { indexUid: uid, q: "moon", filter: "genre = drama" },
  ],
});
seen.federated = await client.multiSearch({
  federation: { page: 2, hitsPerPage: 5 },
  queries: [{ indexUid: uid, q: "star" }, { indexUid: uid, q: "moon", filter: "genre = comedy" }],
});

// Extra search fields beside the facet ones, as InstantSearch sends them.
seen.facetSearch = await index.searchForFacetValues({
  facetName: "genre", facetQuery: "dra", q: "star", filter: "year > 1000",
  attributesToRetrieve: ["*"], limit: 5, offset: 0, hitsPerPage: 20, page: 1,
});

seen.settingsBefore = await index.getSettings();
await done(index.updateSettings(seen.settingsBefore));
seen.settingsAfter = await index.getSettings();

seen.tasks = await client.tasks.getTasks({ indexUids: [uid] });
seen.batches = await client.batches.getBatches({ indexUids: [uid] });
seen.batch = await client.batches.getBatch(seen.tasks.results[0].batchUid);

seen.stats = await index.getStats();
seen.globalStats = await client.getStats();

// Rename by PATCH of the uid, then by swap with `rename: true`.
await done(client.updateIndex(uid, { uid: "js_films" }));
seen.renamed = await client.getRawIndex("js_films");
seen.renamedStats = await client.index("js_films").getStats();
try {
  await client.getRawIndex(uid);
  seen.oldGone = "still there";
} catch (err) {
  seen.oldGone = err.cause?.code ?? String(err);
}
await done(client.swapIndexes([{ indexes: ["js_films", "js_final"], rename: true }]));
seen.swapRenamed = await client.getRawIndex("js_final");
seen.swapRenamedStats = await client.index("js_final").getStats();

console.log(JSON.stringify(seen));
