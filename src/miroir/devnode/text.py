"""Tokenizing for the devnode: text -> normalized words with positions.

Follows the parts of Meilisearch's tokenizer (charabia) that change which documents match:
words are runs of letters/digits, `_` and punctuation separate; case and accents are folded
(Unicode NFKD, combining marks dropped, lowercase); Chinese runs of ideographs are cut into
words by jieba, as charabia does (`大卫` is one word), while kana, hangul and the ideographs of
a text that holds kana (Japanese, which charabia cuts with a dictionary we do not ship) are one
word per character. Positions grow by 1 across a soft separator (space, comma, dash) and by 8
across a hard one (sentence punctuation, newline) so that words of different sentences are
"far" for the proximity rule, as in Meilisearch. Settings `separatorTokens`,
`nonSeparatorTokens` and `dictionary` adjust the splitting. Pure module.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from itertools import islice
from typing import Any

# Meilisearch counts a hard separator as a jump of 8 positions (the proximity cap).
HARD_GAP = 8
# Gap between two values of an array, so their words are never adjacent.
VALUE_GAP = 8

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA_OR_HANGUL = "\u3040-\u30ff\uac00-\ud7af"
_KANA = re.compile("[\u3040-\u30ff]")
_CJK_RE = re.compile(f"[{_CJK}]")
# charabia 0.9.9 (Meilisearch 1.50) hard separators ("context separators"): sentence
# punctuation of every script, and a period or comma followed by a space; a colon, a
# lone period or comma (`32.3`, `a,b`), newlines and tabs are soft.
_HARD_CHARS = "!;?¡§´¶¿՜՝՞։׃،؛؟۔܀܁܂܃܄܅܆܇܈܉߷߸߹࠰࠱࠲࠳࠴࠵࠸࠹࠺࠻࠼࠽࠾࡞।॥෴๚๛༄༅༆༇༈༉༊།༎༏༐༑༒༔࿐࿑࿒࿓࿔၊။჻።፣፤፥፦፧፨᚛᚜᛫᛬᛭᜵᜶។៕៖៘៚᠀᠁᠂᠃᠄᠅᠆᠈᠉᥄᥅᨟᪨᪩᪪᪫᪬᪭᭚᭛᭜᭝᭞᭟᭠᯼᯽᯾᯿᰻᰼᰽᰾᰿᱾᱿᳀᳁᳂᳃᳄᳅᳆᳇․‥…※‼‽⁇⁈⁉⁏⁖⁚⳹⳺⳻⳼⳾⸘⸮⹁、。꓾꓿꘍꘎꘏꛲꛳꛴꛵꛶꛷꡶꡷꣎꣏꤯꥟꧃꧄꧅꧆꧇꧈꧉꧊꧋꧌꧍꩜꩝꩞꩟꫟꫰꫱꯫︐︑︒︓︔︕︖︙︰﹅﹐﹑﹒﹔﹕﹖﹗！，．：；？｡､𐡗𐩐𐩑𐩒𐩓𐩔𐩕𐩖𐩗𐩘𐫰𐫱𐫲𐫳𐫴𐫵𐬺𐬻𐬼𐬽𐬾𐬿𐮙𐮚𐮛𐮜𐽕𐽖𐽗𐽘𐽙𑁇𑁈𑁉𑁊𑁋𑁌𑁍𑂾𑂿𑃀𑃁𑅀𑅁𑅂𑅃𑅵𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑑍𑑚𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑙠𑙡𑙢𑙣𑙤𑙥𑙦𑙧𑙨𑙩𑙪𑙫𑙬𑜼𑜽𑜾𑥄𑥆𑨿𑩀𑩁𑩂𑩃𑩄𑩅𑩆𑪚𑪛𑪜𑪞𑪟𑪠𑪡𑪢𑱁𑱂𑱰𑱱𑻷𑻸𑿿𒑱𒑲𒑳𒑴𖩮𖩯𖫵𖬷𖬸𖬹𖭄𖺗𖺘𖺙𖺚𛲟𝪇𝪈𝪉𝪊𞥞𞥟"
_HARD = re.compile(f"[{re.escape(_HARD_CHARS)}\\x00]|[.,] ")
# A run of ideographs is one match, cut into words afterwards (_cut_han).
_CJK_UNITS = rf"[{_HAN}]+|[{_KANA_OR_HANGUL}]"
# Japanese: a run of ideographs and kana is one match, cut into words by _cut_ja.
_JA_UNITS = rf"[{_HAN}\u3040-\u30ff]+|[\uac00-\ud7af]"
_DEFAULT_WORD = re.compile(rf"{_CJK_UNITS}|[^\W_{_CJK}]+")
_DEFAULT_WORD_JA = re.compile(rf"{_JA_UNITS}|[^\W_{_CJK}]+")


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """A jieba tokenizer, built on the first Chinese text (no index without ideographs
    pays for it). Its prefix dictionary is built from the packaged word list in Python
    (about 0.5 s of CPU), not loaded from jieba's cache file: that load is one call of
    several seconds on a busy machine that holds the GIL, and the node would not answer
    meanwhile."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    with tokenizer.get_dict_file() as f:
        tokenizer.FREQ, tokenizer.total = tokenizer.gen_pfdict(f)
    tokenizer.initialized = True
    return tokenizer


@lru_cache(maxsize=65536)
def _cut_han(run: str) -> tuple[int, ...]:
    """The end offsets of jieba's words in a run of ideographs (charabia's Chinese
    segmenter: jieba's default dictionary, no HMM)."""
    ends = []
    end = 0
    for word in _jieba().cut(run, HMM=False):
        end += len(word)
        ends.append(end)
    return tuple(ends)


@lru_cache(maxsize=1)
def _janome() -> Any:
    """Janome's tokenizer over IPADIC, the dictionary charabia's Japanese segmenter
    (lindera) uses; built on the first Japanese text."""
    from janome.tokenizer import Tokenizer as JanomeTokenizer

    return JanomeTokenizer(wakati=True)


@lru_cache(maxsize=65536)
def _cut_ja(run: str) -> tuple[int, ...]:
    """The end offsets of the words of a run of ideographs and kana (Japanese)."""
    ends = []
    end = 0
    for word in _janome().tokenize(run):
        end += len(word)
        ends.append(end)
    if end != len(run):  # never seen; one word per character rather than wrong offsets
        return tuple(range(1, len(run) + 1))
    return tuple(ends)


@lru_cache(maxsize=1)
def _variants() -> Any:
    """OpenCC's Japanese-to-traditional then traditional-to-simplified tables: charabia
    folds the variants of an ideograph (進 and 撃 are 进 and 击) in Chinese text."""
    from opencc_purepy import OpenCC

    jp2t, t2s = OpenCC("jp2t"), OpenCC("t2s")
    return lambda c: t2s.convert(jp2t.convert(c))


@lru_cache(maxsize=65536)
def _simplified(c: str) -> str:
    out = _variants()(c) if _is_han(c) else c
    return out if len(out) == 1 else c


@lru_cache(maxsize=65536)
def normalize_chinese(word: str) -> str:
    """normalize(), then each ideograph folded to its simplified form."""
    return "".join(_simplified(c) for c in normalize(word))


def _language(text: str, locales: frozenset) -> str:
    """`jpn` or `cmn` for text holding ideographs or kana, as charabia picks it among the
    locales it is given (any, when none): kana mean Japanese, ideographs alone Chinese."""
    kana = _KANA.search(text) is not None
    if kana and (not locales or "jpn" in locales):
        return "jpn"
    if "cmn" in locales or not locales:
        return "cmn"
    return "jpn" if "jpn" in locales else "cmn"


def _is_han(c: str) -> bool:
    return "\u3400" <= c <= "\u4dbf" or "\u4e00" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff"


def _units(pattern: re.Pattern[str], text: str, japanese: bool = False) -> Iterator[tuple[int, int]]:
    """(start, end) of each word of `text`: the pattern's matches, a run of ideographs cut
    by jieba, or (Japanese, with the pattern of _JA_UNITS) a run of ideographs and kana cut
    by janome."""
    for m in pattern.finditer(text):
        if m.lastgroup == "sep":
            continue
        start, end = m.span()
        if end - start > 1 and (_is_han(text[start]) or (japanese and _KANA.match(text[start]))):
            prev = start
            run = text[start:end]
            # Chinese is cut once its variants are folded (`進撃` is the word `进击`).
            for e in _cut_ja(run) if japanese else _cut_han("".join(_simplified(c) for c in run)):
                yield prev, start + e
                prev = start + e
            continue
        yield start, end


@lru_cache(maxsize=65536)
def normalize(word: str) -> str:
    """Fold case and accents: "Éclair" -> "eclair"."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


@lru_cache(maxsize=65536)
def normalize_keeping_marks(word: str) -> str:
    """Fold case only: Swedish text keeps its marks (charabia: `trä` is not `tra`)."""
    return unicodedata.normalize("NFKC", word).lower()


# Languages whose words keep their diacritics (ISO 639-3, as core/locales.canonical gives).
_KEEP_MARKS = frozenset({"swe"})


class Tokenizer:
    """Splits text the way one index's settings ask; one instance per settings version."""

    def __init__(self, separator_tokens=(), non_separator_tokens=(), dictionary=(), locales=frozenset()):
        """`locales`: the languages the text is known to be in (ISO 639-3), from the
        index's `localizedAttributes` or the search's `locales`; empty: any."""
        self.custom = bool(separator_tokens or non_separator_tokens or dictionary)
        self.locales = frozenset(locales)
        self._fold = normalize_keeping_marks if self.locales & _KEEP_MARKS else normalize
        if not self.custom:
            self._word = _DEFAULT_WORD
            self._word_ja = _DEFAULT_WORD_JA
        else:
            alts = []
            # Dictionary entries win over any other split: they are whole words.
            for entry in sorted(set(dictionary), key=len, reverse=True):
                alts.append(re.escape(entry))
            seps = "|".join(re.escape(s) for s in sorted(set(separator_tokens), key=len, reverse=True))
            nonseps = "|".join(re.escape(s) for s in sorted(set(non_separator_tokens), key=len, reverse=True))
            if seps:
                # A separator token is matched (and skipped by _units) where it starts, so
                # that it ends a word even made of non-separator tokens: `Mac&sep&&sepcheese`
                # is `Mac`, `&`, `cheese` with `&` a non-separator and `&sep` a separator.
                alts.append(rf"(?P<sep>{seps})")
            unit = rf"[^\W_{_CJK}]"
            if nonseps:
                unit = rf"(?:{unit}|{nonseps})"
            if seps:
                unit = rf"(?!{seps}){unit}"
            tail = rf"(?:{unit})+"
            self._word = re.compile("|".join([*alts, _CJK_UNITS, tail]))
            self._word_ja = re.compile("|".join([*alts, _JA_UNITS, tail]))

    def _reading(self, text: str) -> tuple[re.Pattern[str], bool, Any]:
        """(pattern, japanese, fold) for `text`: Chinese and Japanese are cut and folded
        each their way."""
        if text.isascii() or not _CJK_RE.search(text):
            return self._word, False, self._fold
        if _language(text, self.locales) == "jpn":
            return self._word_ja, True, self._fold
        return self._word, False, normalize_chinese

    def spans(self, text: str) -> list[tuple[int, int, int, str]]:
        """(position, start char, end char, normalized word) for each word of `text`."""
        out = []
        pos = -1
        last_end = 0
        pattern, japanese, fold = self._reading(text)
        for start, end in _units(pattern, text, japanese):
            if pos < 0:
                pos = 0
            else:
                pos += HARD_GAP if _HARD.search(text, last_end, start) else 1
            out.append((pos, start, end, fold(text[start:end])))
            last_end = end
        return out

    def cjk_language(self, text: str) -> str | None:
        """`jpn` or `cmn` as `text` is read, None when it holds no ideograph nor kana."""
        if text.isascii() or not _CJK_RE.search(text):
            return None
        return _language(text, self.locales)

    def fold(self, text: str) -> str:
        """A whole value normalized as its words would be (a facet value, a facet query)."""
        return self._reading(text)[2](text)

    def first_bounds(self, text: str, n: int) -> list[tuple[int, int]]:
        """(start char, end char) of the first `n` words of `text`: spans()[:n] without
        positions and normalized words."""
        pattern, japanese, _ = self._reading(text)
        return list(islice(_units(pattern, text, japanese), n))

    def words(self, text: str) -> list[tuple[int, str]]:
        """(position, normalized word) pairs; the indexing hot path."""
        if not self.custom and text.isascii():
            return self._ascii_words(text)
        return [(p, w) for p, _, _, w in self.spans(text)]

    def _ascii_words(self, text: str) -> list[tuple[int, str]]:
        out = []
        pos = -1
        last_end = 0
        hard = _HARD.search
        for m in self._word.finditer(text):
            start = m.start()
            if pos < 0:
                pos = 0
            elif start - last_end == 1 and text[last_end] == " ":
                pos += 1  # the common case, no regex needed
            else:
                pos += HARD_GAP if hard(text, last_end, start) else 1
            out.append((pos, m.group().lower()))
            last_end = m.end()
        return out


def value_texts(value) -> list[str]:
    """The strings Meilisearch indexes for one field value (numbers and booleans too)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (int, float)):
        return [str(value)]
    if isinstance(value, list):
        out: list[str] = []
        for v in value:
            out.extend(value_texts(v))
        return out
    return []


def flatten(doc: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted path, leaf value) pairs, objects flattened, arrays of objects looked through."""
    out: list[tuple[str, object]] = []
    for k, v in doc.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(flatten(v, path + "."))
        elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
            for x in v:
                if isinstance(x, dict):
                    out.extend(flatten(x, path + "."))
                else:
                    out.append((path, x))
        else:
            out.append((path, v))
    return out


def ends_on_word(q: str, tokenizer: Tokenizer) -> bool:
    """Whether the query's last token is a word (nothing after it): milli makes only that
    word a prefix, and keeps it even when it is a stop word."""
    spans = tokenizer.spans(q)
    return bool(spans) and spans[-1][2] == len(q)


def query_terms(q: str, tokenizer: Tokenizer, stop_words: frozenset) -> list[tuple[int, str]]:
    """(query position, word) for each word of the query, stop words dropped except the
    last token (milli's parse_query: `to the` searches `the` as a prefix, `to the `
    searches nothing, which lists every document)."""
    words = [w for _, w in tokenizer.words(q)]
    last = len(words) - 1 if ends_on_word(q, tokenizer) else -1
    kept = [(i, w) for i, w in enumerate(words) if w not in stop_words or i == last]
    # Meilisearch caps a query at 10 words.
    return kept[:10]


def bounded_distance(a: str, b: str, k: int, prefix: bool = False) -> int:
    """Damerau (OSA) distance of `a` to `b` — to the closest prefix of `b` when `prefix` —
    or k+1 as soon as it is known to exceed k. Transpositions count as one typo, like
    milli's Levenshtein automata."""
    la = len(a)
    if prefix:
        b = b[: la + k]
    lb = len(b)
    if not prefix and abs(la - lb) > k:
        return k + 1
    prev2: list[int] = []
    prev = list(range(lb + 1))
    for i in range(1, la + 1):
        ca = a[i - 1]
        cur = [i] * (lb + 1)
        rowmin = i
        for j in range(1, lb + 1):
            cb = b[j - 1]
            v = prev[j - 1] + (ca != cb)
            if prev[j] + 1 < v:
                v = prev[j] + 1
            if cur[j - 1] + 1 < v:
                v = cur[j - 1] + 1
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb and prev2[j - 2] + 1 < v:
                v = prev2[j - 2] + 1
            cur[j] = v
            if v < rowmin:
                rowmin = v
        if rowmin > k:
            return k + 1
        prev2, prev = prev, cur
    d = min(prev) if prefix else prev[lb]
    return d if d <= k else k + 1
