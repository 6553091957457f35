"""A tiny synthetic data root in the official layouts, generated (never copied from the shared data).

Why: without `../shared/data` the loaders, evaluation, CLI and dashboard would go untested. This builds, in a few
seconds, the same folder layout the loaders read:

    flickr8k/images/<id>_<hex>.jpg + flickr8k/captions.txt       (CSV `image,caption`, 5 per photo)
    multi30k/task1/image_splits/{train,val,test_2016_flickr}.txt + task1/raw/<split>.{en,de,fr,cs}.gz
    multi30k/task2/raw/<split>.<k>.{en,de}.gz                     (k = 1..5)
    xtd10/{XTD10,MIC,STAIR}/test_1kcaptions_<lang>.txt + XTD10/test_image_names.txt
    muse/en-<lang>.dict                                           (`target @ source`, as in the shared files)
    reference/openclip_multilingual_retrieval_results.csv         (open_clip's published-results CSV layout)
    flickr8k-cn/flickr8k{zhc.caption,zhb.caption,zhmtest.captions}.txt  (`NAME.jpg#zhc#j caption`)
    arabic-flickr8k/Flickr8k.arabic.full.txt                      (`NAME.jpg#j<TAB>caption`, 3 per photo)
    framed-multi30k/multi30k/task1/raw/<split>.pt.gz + flickr30k/captions.txt.gz (`ID.jpg#j<TAB>`, j from 1)

Photos are small generated pictures (a coloured shape on a coloured background) and captions describe them from a
small grammar whose words all have dictionary entries, so code-switching and retrieval have something real to do.
The flickr8k-multi30k split keeps its published sizes (237 test / 100 val photos), so `SYNTHETIC_PHOTOS` photos
with task1 captions are more than 337.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

SYNTHETIC_PHOTOS = 400  # 370 with Multi30K task1 captions, 30 without (like the 63 of the real set)
WITH_TASK1 = 370
XTD10_LINES = 40

COLOURS = {  # en: (de, fr, cs, zh, ja, rgb)
    "red": ("rote", "rouge", "červený", "红色", "赤", (200, 30, 30)),
    "blue": ("blaue", "bleu", "modrý", "蓝色", "青", (30, 60, 200)),
    "green": ("grüne", "vert", "zelený", "绿色", "緑", (30, 160, 60)),
    "yellow": ("gelbe", "jaune", "žlutý", "黄色", "黄色", (230, 210, 40)),
    "black": ("schwarze", "noir", "černý", "黑色", "黒", (15, 15, 15)),
    "white": ("weiße", "blanc", "bílý", "白色", "白", (240, 240, 240)),
}
SHAPES = {"circle": ("Kreis", "cercle", "kruh", "圆", "円"), "square": ("Quadrat", "carré", "čtverec", "正方形", "四角"),
          "triangle": ("Dreieck", "triangle", "trojúhelník", "三角形", "三角"), "dog": ("Hund", "chien", "pes", "狗", "犬")}
PLACES = {"beach": ("Strand", "plage", "pláž", "海滩", "浜辺"), "street": ("Straße", "rue", "ulice", "街道", "通り"),
          "park": ("Park", "parc", "park", "公园", "公園"), "room": ("Zimmer", "pièce", "pokoj", "房间", "部屋")}
FUNCTION_WORDS = {"a": ("ein", "un", "jeden", "一个", "ひとつ"), "on": ("auf", "sur", "na", "在", "上"),
                  "the": ("der", "le", "ten", "这", "その"), "in": ("in", "dans", "v", "在", "中"),
                  "big": ("große", "grand", "velký", "大", "大きい"), "small": ("kleine", "petit", "malý", "小", "小さい")}
# Verbs are deliberately NOT in the dictionaries: real lexicons never cover every word (coverage < 1).
VERBS = {"lies": ("liegt", "est", "leží"), "sits": ("sitzt", "reste", "sedí"), "stands": ("steht", "se tient", "stojí")}
MUSE_LANGS = ("de", "fr", "cs", "zh", "ja")
# A right-to-left lexicon for the code-switching explorer's bidi checks: a few words of the grammar in Arabic.
MUSE_AR = {"red": "أحمر", "blue": "أزرق", "dog": "كلب", "circle": "دائرة", "beach": "شاطئ", "street": "شارع",
           "big": "كبير", "small": "صغير"}
XTD_LANGS = ("en", "es", "it", "ko", "pl", "ru", "tr", "zh")
XTD_WORDS = {"es": "una", "it": "una", "ko": "사진", "pl": "zdjęcie", "ru": "фото", "tr": "bir", "zh": "照片"}


def _photo_id(i: int) -> str:
    return f"{1000000000 + i * 7919}"


def _describe(rng: random.Random) -> tuple[str, str, str, str, str]:
    colour = rng.choice(sorted(COLOURS))
    shape = rng.choice(sorted(SHAPES))
    place = rng.choice(sorted(PLACES))
    size = rng.choice(("big", "small"))
    verb = rng.choice(sorted(VERBS))
    return colour, shape, place, size, verb


def _caption(lang: int, parts: tuple[str, str, str, str, str]) -> str:
    """lang -1 = English, 0/1/2 = de/fr/cs."""
    colour, shape, place, size, verb = parts
    if lang < 0:
        return f"A {size} {colour} {shape} {verb} in the {place} ."
    a, size_w, in_w, the_w = (FUNCTION_WORDS[w][lang] for w in ("a", size, "in", "the"))
    return (f"{a.capitalize()} {size_w} {COLOURS[colour][lang]} {SHAPES[shape][lang]} {VERBS[verb][lang]} {in_w} "
            f"{the_w} {PLACES[place][lang]} .")


def _image(path: Path, parts: tuple[str, str, str, str, str], rng: random.Random) -> None:
    from PIL import Image, ImageDraw

    colour, shape, place, size, _ = parts
    background = {"beach": (220, 200, 150), "street": (120, 120, 120), "park": (90, 170, 90), "room": (200, 180, 220)}
    img = Image.new("RGB", (160, 120), background[place])
    draw = ImageDraw.Draw(img)
    for _ in range(12):  # texture, so JPEGs have real entropy-coded data past the header
        x, y = rng.randint(0, 150), rng.randint(0, 110)
        draw.point((x, y), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    r = 40 if size == "big" else 20
    cx, cy = rng.randint(45, 115), rng.randint(45, 75)
    box = (cx - r, cy - r, cx + r, cy + r)
    fill = COLOURS[colour][5]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "dog":
        draw.ellipse((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=fill)
        draw.ellipse((cx + r - 8, cy - r, cx + r + 12, cy - r // 3), fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    img.save(path, format="JPEG", quality=90)


def _write_gz(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_synthetic_data(root: Path, seed: int = 0) -> Path:
    """Write the synthetic data root under `root` (created) and return it."""
    rng = random.Random(seed)
    root = Path(root)
    images = root / "flickr8k" / "images"
    images.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(SYNTHETIC_PHOTOS):
        parts = _describe(rng)
        name = f"{_photo_id(i)}_{rng.getrandbits(40):010x}.jpg"
        _image(images / name, parts, rng)
        photos.append((name, parts))
    # Flickr8k: five English captions per photo (the first is the task1 line, the others vary the wording).
    rows = ["image,caption"]
    for name, (colour, shape, place, size, verb) in photos:
        variants = [_caption(-1, (colour, shape, place, size, verb)), f"A {colour} {shape} .", f"The {shape} is {colour} .",
                    f"A {size} {shape} in a {place} .", f"{colour} {shape} on the {place} ."]
        rows += [f"{name},{v}" for v in variants]
    _write(root / "flickr8k" / "captions.txt", rows)
    # Multi30K task1: 300 train / 35 val / 35 test_2016_flickr photos, en + de/fr/cs lines aligned with the list.
    task1 = photos[:WITH_TASK1]
    splits = {"train": task1[:300], "val": task1[300:335], "test_2016_flickr": task1[335:]}
    for split, members in splits.items():
        ids = [f"{name.split('_', 1)[0]}.jpg" for name, _ in members]
        _write(root / "multi30k" / "task1" / "image_splits" / f"{split}.txt", ids)
        _write_gz(root / "multi30k" / "task1" / "raw" / f"{split}.en.gz", [_caption(-1, p) for _, p in members])
        for j, lang in enumerate(("de", "fr", "cs")):
            _write_gz(root / "multi30k" / "task1" / "raw" / f"{split}.{lang}.gz", [_caption(j, p) for _, p in members])
        stem = "test_2016" if split == "test_2016_flickr" else split
        for k in range(1, 6):  # task 2: five independent captions per language
            _write_gz(root / "multi30k" / "task2" / "raw" / f"{stem}.{k}.en.gz",
                      [f"{_caption(-1, p)[:-2]} number {k} ." for _, p in members])
            _write_gz(root / "multi30k" / "task2" / "raw" / f"{stem}.{k}.de.gz",
                      [f"{_caption(0, p)[:-2]} Nummer {k} ." for _, p in members])
    # XTD10: text only (COCO names), one caption per language per line.
    xtd = [(f"COCO_train2014_{100000 + i:012d}.jpg", _describe(rng)) for i in range(XTD10_LINES)]
    _write(root / "xtd10" / "XTD10" / "test_image_names.txt", [n for n, _ in xtd])
    for lang in XTD_LANGS:
        lines = [_caption(-1, p) if lang == "en" else f"{XTD_WORDS[lang]} {p[0]} {p[1]} {i}" for i, (_, p) in enumerate(xtd)]
        _write(root / "xtd10" / "XTD10" / f"test_1kcaptions_{lang}.txt", lines)
    _write(root / "xtd10" / "MIC" / "test_1kcaptions_de.txt", [_caption(0, p) for _, p in xtd])
    _write(root / "xtd10" / "MIC" / "test_1kcaptions_fr.txt", [_caption(1, p) for _, p in xtd])
    _write(root / "xtd10" / "STAIR" / "test_1kcaptions_jp.txt", [f"写真 {p[1]} {i}" for i, (_, p) in enumerate(xtd)])
    # MUSE dictionaries in the shared files' layout: `target @ source`, several senses allowed.
    vocab = {**{k: v[:5] for k, v in COLOURS.items()}, **SHAPES, **PLACES, **FUNCTION_WORDS}
    for j, lang in enumerate(MUSE_LANGS):
        lines = [f"{tgt[j].lower()} @ {src}" for src, tgt in sorted(vocab.items())]
        _write(root / "muse" / f"en-{lang}.dict", lines)
    _write(root / "muse" / "en-ar.dict", [f"{tgt} @ {src}" for src, tgt in sorted(MUSE_AR.items())])
    # open_clip's published multilingual results table (XTD10 = multilingual_mscoco_captions), made-up numbers.
    langs = ("de", "en", "es", "fr", "it", "jp", "ko", "pl", "ru", "tr", "zh")
    columns = ["model", "version", "avg"] + [f"multilingual_mscoco_captions {kind}_retrieval_recall@{k} {lang}"
                                             for kind in ("image", "text") for k in (1, 5, 10) for lang in langs]
    table = [",".join(columns)]
    for m in range(4):
        values = [f"{rng.uniform(0.1, 0.9):.4f}" for _ in columns[2:]]
        table.append(",".join([f"synthetic-model-{m}", "v1", *values]))
    _write(root / "reference" / "openclip_multilingual_retrieval_results.csv", table)
    _write_distant_languages(root, photos, splits)
    (root / "README.md").write_text("Synthetic data generated by tests/synthetic_data.py (not real data).\n")
    return root


PT_WORDS = {"red": "vermelho", "blue": "azul", "green": "verde", "yellow": "amarelo", "black": "preto",
            "white": "branco", "circle": "círculo", "square": "quadrado", "triangle": "triângulo", "dog": "cão",
            "beach": "praia", "street": "rua", "park": "parque", "room": "quarto", "big": "grande", "small": "pequeno"}


def _write_distant_languages(root: Path, photos: list, splits: dict) -> None:
    """Chinese, Arabic and Portuguese captions of the photos in Flickr8k-CN, Arabic Flickr8k and Framed Multi30K
    layouts: zh written from the grammar (independent), zh-x-f8k / zh-x-mt line-aligned with the five English
    captions, ar three per photo, pt a task1 translation and five originals per photo (numbered from 1)."""
    zhc, zhm, zhb, ar, originals = [], [], [], [], []
    for i, (name, (colour, shape, place, size, verb)) in enumerate(photos):
        zh_colour, zh_shape, zh_place = COLOURS[colour][3], SHAPES[shape][3], PLACES[place][3]
        native = [f"{FUNCTION_WORDS[size][3]}{zh_colour}{zh_shape}在{zh_place}", f"{zh_place}里有{zh_shape}",
                  f"{zh_colour}的{zh_shape}", f"一个{zh_shape}", f"{zh_place}的照片"]
        translated = [f"一个{FUNCTION_WORDS[size][3]}{zh_colour}{zh_shape}在{zh_place}", f"一个{zh_colour}{zh_shape}",
                      f"这个{zh_shape}是{zh_colour}", f"{zh_place}里的{FUNCTION_WORDS[size][3]}{zh_shape}",
                      f"{zh_place}上的{zh_colour}{zh_shape}"]
        zhc += [f"{name}#zhc#{j} {c}" for j, c in enumerate(native)]
        zhb += [f"{name}#zhb#{j} {c}" for j, c in enumerate(translated)]
        if i % 10 == 0:  # human translations cover a part of the photos only, as in Flickr8k-CN
            zhm += [f"{name}#zhm#{j} {c}" for j, c in enumerate(translated)]
        ar_shape, ar_colour = MUSE_AR.get(shape, "شكل"), MUSE_AR.get(colour, "لون")
        ar += [f"{name}#{j}\t{c}" for j, c in enumerate((f"{ar_shape} {ar_colour}", f"{ar_shape} في المكان",
                                                           f"صورة {ar_shape}"))]
        pt = (PT_WORDS[shape], PT_WORDS[colour], PT_WORDS[place])
        originals += [f"{name.split('_', 1)[0]}.jpg#{j}\tUm {pt[0]} {pt[1]} número {j} no {pt[2]}."
                      for j in range(1, 6)]
    _write(root / "flickr8k-cn" / "flickr8kzhc.caption.txt", zhc)
    _write(root / "flickr8k-cn" / "flickr8kzhb.caption.txt", zhb)
    _write(root / "flickr8k-cn" / "flickr8kzhmtest.captions.txt", zhm)
    _write(root / "arabic-flickr8k" / "Flickr8k.arabic.full.txt", ar)
    for split, members in splits.items():
        _write_gz(root / "framed-multi30k" / "multi30k" / "task1" / "raw" / f"{split}.pt.gz",
                  [f"Um {PT_WORDS[p[3]]} {PT_WORDS[p[1]]} {PT_WORDS[p[0]]} no {PT_WORDS[p[2]]} ." for _, p in members])
    _write_gz(root / "framed-multi30k" / "flickr30k" / "captions.txt.gz", originals)
