"""The dashboard's notation in one place: every page's tooltips and the Overview's glossary read these entries, so a
term is explained once and the same way everywhere (and the CLI docs can quote them)."""

from __future__ import annotations

GLOSSARY: dict[str, str] = {
    "R@K": "Recall at K: the percentage of queries whose correct item is among the top K retrieved (higher is "
           "better). With 5 captions per photo, an image query counts as a hit when any of its captions is in the "
           "top K (CLIP_benchmark's convention).",
    "t2i": "text → image: a caption is the query, the photos are the gallery (CLIP_benchmark's 'image retrieval').",
    "i2t": "image → text: a photo is the query, the captions are the gallery ('text retrieval').",
    "t2t": "text → text: a caption in one language retrieves the same photo's caption in another (cross-lingual).",
    "gallery": "What is searched: its size (photos for t2i, captions for i2t) sets chance level, so R@K is only "
               "comparable between runs with the same gallery (dataset, split, photo set).",
    "arm": "A training recipe: which captions the text side sees — en (EN-only), blcs-X (bilingual code-switching "
           "into X), mlcs-… (multilingual code-switching over several languages), mix-… (English and switched "
           "captions pooled, the paper's setting), tt-… (human translations, translate-train), noise-… (the same "
           "positions replaced by random words: a control).",
    "seed": "A training repetition (`/sN` in a model name); seeds also vary the code-switch draws. Pages pool them: "
            "mean over seeds, with their sd.",
    "model name": "csr-mini[:<arm>][/s<seed>][+top<N>]: our small CLIP-like model (frozen image tower, trained "
                  "projection heads, and with +topN the top N text layers too); csr-mini = MiniLM text tower, "
                  "csr-mini-m = multilingual-e5. `/s*` marks seeds pooled. open_clip:<arch>/<tag> and hf:<repo> "
                  "are pretrained models.",
    "close / distant": "Test languages grouped by URIEL distance from English: close = de, fr, pt; distant = zh, ar "
                       "(cs sits between). The question is whether code-switching closes more of the gap to English "
                       "for the distant ones.",
    "gap closure": "(arm − EN-only) / (EN-only in English − EN-only in X): the share of the gap to English an arm "
                   "closes; 1 = as good as English.",
    "Holm": "The multiple-test correction over the report's declared family (all arms × languages of a tower at "
            "t2i R@10); a star means significant after it.",
    "run set": "Which runs a view reads: a shipped experiment (experiment-2, experiment-2-towers), your own runs, or "
               "`scratch` (quick runs from the Run eval and Fine-tuning pages, left out of published views by "
               "default).",
}


def explain(term: str) -> str:
    """The glossary entry for `term` (a tooltip); KeyError names a term nobody defined."""
    return GLOSSARY[term]
