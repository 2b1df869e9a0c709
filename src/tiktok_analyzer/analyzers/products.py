"""Product detection: which products and brands appear, from when, for how long.

Two sources, joined:

* vision: CLIP zero-shot over a committed vocabulary of product categories
  (:data:`CATEGORIES`, with non-product classes beside them so "no product" can win) and of
  brands (:data:`BRANDS`, with a "no brand" class), on crops. With object_detection's
  tracks, each track's boxes (the most confident ``max_crops_per_track``) are cut from the
  frame nearest each box's time (a margin around the box) and letterboxed into CLIP's
  square, and the track's crops vote by mean probability. Without usable boxes, every
  sampled frame (at most ``max_frames``) is scored whole and as its central crop, the
  better of the two counting. A category whose probability is under ``min_score`` is not a
  product; a brand under ``min_brand_score`` is no brand.
* text: a brand of the vocabulary read by text_overlay (whole words, accents and
  punctuation ignored: "NIKE", "Coca Cola", "L'Oréal") is a brand hit over the text's time.

Joining (:func:`join_products`): a text hit for a brand that vision also saw confirms it
(``source: "both"``, confidence 1 - (1 - vision) (1 - text)); otherwise it names the brand
of an unbranded vision product on screen at the same time (within ``join_window_s``), the
one overlapping most; otherwise it is a product of its own, labelled with the brand's broad
category (``source: "text"``). Screen time is the union of a product's spans; a brand that
is also an everyday word ("Apple", "Dove") carries a lower text confidence.

Model (``model`` parameter): OpenAI CLIP ViT-L/14 on a GPU, ViT-B/32 on a CPU by default
("auto", named in the report). L/14 because brands are read from logos and print on
packaging, details its 14 px patches resolve and B/32's 32 px patches blur, at a cost a GPU
absorbs (a clip's crops are capped at ``max_crops``); B/32 (~20x fewer FLOPs per crop) keeps
real weights usable on a CPU host.

Without CLIP's weights (partial): the brands read on screen (``brands_in_text``), the
``mode`` and the ``candidates`` stand; ``products`` and ``crops_scored`` are null
(``Result.made_by_model``), with the command that fetches the weights. Candidates are
object_detection's tracks whose COCO class can be a product (:data:`NOT_CANDIDATES` are
not), each with the brands read on screen while it is (within ``join_window_s``): the
detector's class, not CLIP's verdict, reported the same with and without the model.

Known limits: zero-shot CLIP knows big consumer brands by their logos but confuses look-alike
packaging; the vocabulary is fixed (extend :data:`CATEGORIES` / :data:`BRANDS`); the text
join trusts OCR spelling (no fuzzy matching), so a misread brand is missed.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._clip import ClipZeroShot, Vocabulary, clip_duration, validate_frames
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared
from tiktok_analyzer.analyzers.base import (
    Clip,
    FrameSpec,
)
from tiktok_analyzer.analyzers.results.objects import BoxSample, ObjectDetectionResult
from tiktok_analyzer.analyzers.results.ocr import TextOverlayResult, TextTrack
from tiktok_analyzer.analyzers.results.products import (  # noqa: F401 - re-exported
    BrandInText,
    ProductCandidate,
    ProductDetectionResult,
    ProductItem,
)

__all__ = [
    "BRANDS",
    "CATEGORIES",
    "NOT_CANDIDATES",
    "Brand",
    "BrandInText",
    "BrandHit",
    "ProductDetection",
    "VisionProduct",
    "brand_hits",
    "join_products",
    "normalize_text",
]

log = logging.getLogger(__name__)

MODELS = {
    "vit-l-14": "clip-vit-l-14-openai",
    "vit-b-32": "clip-vit-b-32-openai",
}

# ---------------------------------------------------------------------------------------
# Vocabulary

CATEGORIES: tuple[str, ...] = (
    "sneakers",
    "high heels",
    "boots",
    "handbag",
    "backpack",
    "sunglasses",
    "wristwatch",
    "jewelry",
    "t-shirt",
    "hoodie",
    "dress",
    "jeans",
    "baseball cap",
    "lipstick",
    "mascara",
    "eyeshadow palette",
    "foundation bottle",
    "nail polish",
    "perfume bottle",
    "skincare cream jar",
    "serum bottle",
    "shampoo bottle",
    "toothpaste",
    "razor",
    "hair dryer",
    "smartphone",
    "laptop",
    "tablet",
    "headphones",
    "wireless earbuds",
    "smartwatch",
    "camera",
    "game controller",
    "video game console",
    "television",
    "bluetooth speaker",
    "energy drink can",
    "soda can",
    "soda bottle",
    "beer bottle",
    "coffee cup",
    "water bottle",
    "tumbler",
    "bag of chips",
    "chocolate bar",
    "cereal box",
    "burger",
    "protein powder tub",
    "supplement bottle",
    "car",
    "bicycle",
    "blender",
    "frying pan",
    "toy",
    "book",
    "candle",
)
# Non-products beside the categories: a crop of a face or a wall should not be forced
# into the nearest product.
NOT_PRODUCTS: tuple[str, ...] = (
    "person",
    "face",
    "hand",
    "animal",
    "room",
    "street",
    "landscape",
    "plain background",
    "text",
)
_NONE_PREFIX = "not a product: "

#: COCO classes of object_detection that are never a product candidate: people, animals,
#: street furniture.
NOT_CANDIDATES: frozenset[str] = frozenset(
    {
        "person",
        "bird",
        "cat",
        "dog",
        "horse",
        "sheep",
        "cow",
        "elephant",
        "bear",
        "zebra",
        "giraffe",
        "traffic light",
        "fire hydrant",
        "stop sign",
        "parking meter",
        "bench",
        "potted plant",
    }
)


@dataclass(frozen=True)
class Brand:
    """A brand of the vocabulary: its key (reported), display name (prompts), broad
    category (the label of a product known only from text), the words that name it in
    on-screen text, and whether those words are also everyday words."""

    key: str
    name: str
    category: str
    aliases: tuple[str, ...] = ()
    common_word: bool = False

    def words(self) -> tuple[str, ...]:
        """Normalised spellings: the name, the aliases, and multi-word ones run together."""
        out: list[str] = []
        for raw in (self.name, *self.aliases):
            norm = normalize_text(raw)
            for w in (norm, norm.replace(" ", "")):
                if w and w not in out:
                    out.append(w)
        return tuple(out)


BRANDS: tuple[Brand, ...] = (
    Brand("nike", "Nike", "sportswear"),
    Brand("adidas", "Adidas", "sportswear"),
    Brand("puma", "Puma", "sportswear", common_word=True),
    Brand("new_balance", "New Balance", "sportswear"),
    Brand("converse", "Converse", "footwear", common_word=True),
    Brand("vans", "Vans", "footwear", common_word=True),
    Brand("under_armour", "Under Armour", "sportswear"),
    Brand("lululemon", "Lululemon", "sportswear"),
    Brand("the_north_face", "The North Face", "outdoor clothing"),
    Brand("gucci", "Gucci", "fashion"),
    Brand("louis_vuitton", "Louis Vuitton", "fashion", ("LV",)),
    Brand("chanel", "Chanel", "fashion"),
    Brand("dior", "Dior", "fashion"),
    Brand("prada", "Prada", "fashion"),
    Brand("zara", "Zara", "fashion"),
    Brand("h_and_m", "H&M", "fashion"),
    Brand("shein", "Shein", "fashion"),
    Brand("uniqlo", "Uniqlo", "fashion"),
    Brand("ray_ban", "Ray-Ban", "eyewear"),
    Brand("rolex", "Rolex", "watches"),
    Brand("apple", "Apple", "electronics", ("iPhone", "AirPods", "MacBook"), common_word=True),
    Brand("samsung", "Samsung", "electronics", ("Galaxy",)),
    Brand("sony", "Sony", "electronics"),
    Brand("xiaomi", "Xiaomi", "electronics"),
    Brand("nintendo", "Nintendo", "video games"),
    Brand("playstation", "PlayStation", "video games"),
    Brand("xbox", "Xbox", "video games"),
    Brand("gopro", "GoPro", "electronics"),
    Brand("dyson", "Dyson", "home appliances"),
    Brand("canon", "Canon", "electronics", common_word=True),
    Brand("coca_cola", "Coca-Cola", "beverage", ("Coke",)),
    Brand("pepsi", "Pepsi", "beverage"),
    Brand("red_bull", "Red Bull", "beverage"),
    Brand("monster_energy", "Monster Energy", "beverage"),
    Brand("starbucks", "Starbucks", "beverage"),
    Brand("heineken", "Heineken", "beverage"),
    Brand("mcdonalds", "McDonald's", "fast food"),
    Brand("doritos", "Doritos", "snacks"),
    Brand("oreo", "Oreo", "snacks"),
    Brand("nutella", "Nutella", "snacks"),
    Brand("loreal", "L'Oréal", "cosmetics", ("Loreal",)),
    Brand("maybelline", "Maybelline", "cosmetics"),
    Brand("fenty_beauty", "Fenty Beauty", "cosmetics"),
    Brand("rare_beauty", "Rare Beauty", "cosmetics"),
    Brand("nyx", "NYX", "cosmetics"),
    Brand("cerave", "CeraVe", "skincare"),
    Brand("the_ordinary", "The Ordinary", "skincare", common_word=True),
    Brand("nivea", "Nivea", "skincare"),
    Brand("dove", "Dove", "personal care", common_word=True),
    Brand("olaplex", "Olaplex", "hair care"),
    Brand("stanley", "Stanley", "drinkware", common_word=True),
    Brand("tesla", "Tesla", "cars"),
    Brand("bmw", "BMW", "cars"),
    Brand("mercedes_benz", "Mercedes-Benz", "cars", ("Mercedes",)),
    Brand("ikea", "IKEA", "furniture"),
    Brand("lego", "LEGO", "toys"),
    Brand("amazon", "Amazon", "retail", common_word=True),
)
_NO_BRAND = "no brand"


def _article(noun: str) -> str:
    if (noun.endswith("s") and not noun.endswith(("ss", "us"))) or noun in {"jewelry", "text"}:
        return noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


PRODUCT_VOCABULARY = Vocabulary.of(
    [(c, [f"a photo of {_article(c)}.", f"a product photo of {_article(c)}."]) for c in CATEGORIES]
    + [
        (_NONE_PREFIX + n, [f"a photo of {_article(n)}.", f"a close-up photo of {_article(n)}."])
        for n in NOT_PRODUCTS
    ]
)
BRAND_VOCABULARY = Vocabulary.of(
    [
        (b.key, [f"a photo of a {b.name} product.", f"the {b.name} logo.", f"{b.name}."])
        for b in BRANDS
    ]
    + [
        (
            _NO_BRAND,
            [
                "a product with no visible logo.",
                "a plain unbranded object.",
                "a generic item without any brand name.",
            ],
        )
    ]
)
_BRAND_BY_KEY = {b.key: b for b in BRANDS}
_N_CATEGORIES = len(CATEGORIES)


# ---------------------------------------------------------------------------------------
# Text: brand words in on-screen text


def normalize_text(text: str) -> str:
    """Lowercase ASCII words: accents dropped, ``&`` kept as a word of its own, every
    other non-alphanumeric a space ("L'Oréal" -> "l oreal", "H&M" -> "h & m")."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    ascii_ = ascii_.replace("'", "").replace("\u2019", "")
    ascii_ = re.sub(r"&", " & ", ascii_)
    return " ".join(re.sub(r"[^a-z0-9&]+", " ", ascii_).split())


@dataclass(frozen=True)
class BrandHit:
    """A brand read in on-screen text."""

    brand: str
    text: str
    start_s: float
    end_s: float
    confidence: float


def _brand_patterns(brands: Iterable[Brand]) -> list[tuple[Brand, re.Pattern[str]]]:
    out = []
    for b in brands:
        alternatives = "|".join(re.escape(w) for w in sorted(b.words(), key=len, reverse=True))
        out.append((b, re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")))
    return out


_PATTERNS = _brand_patterns(BRANDS)


def brand_hits(
    texts: Sequence[TextTrack] | None,
    text_confidence: float = 0.9,
    common_word_confidence: float = 0.5,
    patterns: Sequence[tuple[Brand, re.Pattern[str]]] = _PATTERNS,
) -> list[BrandHit]:
    """Every vocabulary brand named in text_overlay's ``texts``; texts whose times are not
    finite are skipped. A brand whose name is also an everyday word gets
    ``common_word_confidence``."""
    hits: list[BrandHit] = []
    for item in texts or []:
        raw, a, b = item.text, item.start_s, item.end_s
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        a, b = min(a, b), max(a, b)
        norm = normalize_text(raw)
        for brand, pattern in patterns:
            if pattern.search(norm):
                conf = common_word_confidence if brand.common_word else text_confidence
                hits.append(BrandHit(brand.key, raw, a, b, conf))
    return hits


# ---------------------------------------------------------------------------------------
# Joining vision and text


@dataclass
class VisionProduct:
    """A product seen by CLIP: over one object track, or over sampled frames."""

    label: str
    brand: str | None
    confidence: float
    spans: list[tuple[float, float]]
    brand_confidence: float = 0.0
    track_ids: list[int] = field(default_factory=list)
    crops: int = 0


def _union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]], pad: float) -> float:
    """Overlap of two span lists, each span of ``a`` widened by ``pad`` on both sides; a
    touch within ``pad`` counts a little (1 ms) so it still joins."""
    total, touched = 0.0, False
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0 - pad, b0), min(a1 + pad, b1)
            if hi >= lo:
                touched = True
                total += hi - lo
    return max(total, 1e-3) if touched else 0.0


@dataclass
class _Joined:
    label: str
    brand: str | None
    spans: list[tuple[float, float]]
    vision_conf: float = 0.0
    text_conf: float = 0.0
    brand_conf: float | None = None
    track_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    vision: bool = False
    text: bool = False

    def absorb(self, other: _Joined) -> None:
        self.spans += other.spans
        self.vision_conf = max(self.vision_conf, other.vision_conf)
        self.text_conf = max(self.text_conf, other.text_conf)
        if other.brand_conf is not None:
            self.brand_conf = max(self.brand_conf or 0.0, other.brand_conf)
        self.track_ids += [t for t in other.track_ids if t not in self.track_ids]
        self.texts += [t for t in other.texts if t not in self.texts]
        self.vision |= other.vision
        self.text |= other.text


def join_products(
    vision: Sequence[VisionProduct],
    hits: Sequence[BrandHit],
    duration_s: float,
    join_window_s: float = 1.0,
) -> list[ProductItem]:
    """Vision products and text brand hits -> the report's products (see the module's
    docstring for the rules), ordered by first appearance."""
    items = [
        _Joined(
            v.label,
            v.brand,
            list(v.spans),
            vision_conf=v.confidence,
            brand_conf=v.brand_confidence if v.brand else None,
            track_ids=list(v.track_ids),
            vision=True,
        )
        for v in vision
        if v.spans
    ]
    by_brand: dict[str, list[BrandHit]] = {}
    for h in hits:
        by_brand.setdefault(h.brand, []).append(h)
    for brand, brand_hits_ in by_brand.items():
        spans = _union((h.start_s, h.end_s) for h in brand_hits_)
        conf = max(h.confidence for h in brand_hits_)
        texts = list(dict.fromkeys(h.text for h in brand_hits_))
        same = [it for it in items if it.brand == brand and it.vision]
        if not same:
            unbranded = [
                (it, _overlap(spans, it.spans, join_window_s))
                for it in items
                if it.brand is None and it.vision
            ]
            unbranded = [(it, ov) for it, ov in unbranded if ov > 0]
            if unbranded:
                best = max(unbranded, key=lambda p: p[1])[0]
                best.brand = brand
                same = [best]
        if same:
            for it in same:
                it.text = True
                it.text_conf = max(it.text_conf, conf)
                it.brand_conf = max(it.brand_conf or 0.0, conf)
                it.spans += spans
                it.texts += [t for t in texts if t not in it.texts]
            continue
        category = _BRAND_BY_KEY[brand].category if brand in _BRAND_BY_KEY else "brand"
        items.append(
            _Joined(category, brand, spans, text_conf=conf, brand_conf=conf, texts=texts, text=True)
        )
    # One entry per (label, brand).
    merged: dict[tuple[str, str | None], _Joined] = {}
    for it in items:
        key = (it.label, it.brand)
        if key in merged:
            merged[key].absorb(it)
        else:
            merged[key] = it
    out = [_product_item(it, max(duration_s, 1e-6)) for it in merged.values()]
    out.sort(key=lambda p: (p.first_s, -p.confidence))
    return out


def _product_item(it: _Joined, duration: float) -> ProductItem:
    """One joined product as reported: confidences of both sources combined as independent
    evidence."""
    spans = _union((max(0.0, a), max(0.0, b)) for a, b in it.spans)
    screen = sum(b - a for a, b in spans)
    if it.vision and it.text:
        conf, source = 1 - (1 - it.vision_conf) * (1 - it.text_conf), "both"
    elif it.vision:
        conf, source = it.vision_conf, "vision"
    else:
        conf, source = it.text_conf, "text"
    return ProductItem(
        label=it.label,
        brand=it.brand,
        first_s=round(spans[0][0], 3),
        last_s=round(spans[-1][1], 3),
        screen_time_s=round(screen, 3),
        screen_share=round(min(1.0, screen / duration), 4),
        confidence=round(conf, 4),
        source=source,  # type: ignore[arg-type]
        brand_confidence=round(it.brand_conf, 4) if it.brand_conf is not None else None,
        track_ids=sorted(it.track_ids),
        texts=it.texts,
    )


# ---------------------------------------------------------------------------------------
# Crops


@dataclass
class _Crop:
    image: np.ndarray
    group: int  # track index (objects mode) or frame index (frames mode)
    time_s: float


@dataclass
class _Track:
    track_id: int
    first_s: float
    last_s: float


def _valid_box(box: BoxSample) -> tuple[float, tuple[float, float, float, float], float] | None:
    """(time, box clamped to the frame, confidence); None for a box that is not one."""
    if len(box.bbox) != 4:
        return None
    x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in box.bbox)
    if not math.isfinite(box.time_s) or x1 <= x0 or y1 <= y0:
        return None
    return box.time_s, (x0, y0, x1, y1), box.confidence


def _crop(frame: np.ndarray, bbox: tuple[float, float, float, float], margin: float):
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = bbox
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    a, b = int(max(0, math.floor((x0 - mx) * w))), int(min(w, math.ceil((x1 + mx) * w)))
    c, d = int(max(0, math.floor((y0 - my) * h))), int(min(h, math.ceil((y1 + my) * h)))
    if b - a < 2 or d - c < 2:
        return None
    return frame[c:d, a:b]


class ProductDetection(LearnedAnalyzer):
    """Products and brands from CLIP zero-shot on object crops, joined with brand words
    read on screen."""

    name = "product_detection"
    frames = FrameSpec(fps=1.0, short_side=448)
    depends_on = ("object_detection", "text_overlay")
    model_name = "clip-vit-b-32-openai"

    @dataclass
    class Params:
        # auto: ViT-L/14 where torch sees a CUDA device, ViT-B/32 on a CPU; or vit-l-14 /
        # vit-b-32 (manifest models clip-vit-l-14-openai / clip-vit-b-32-openai).
        model: str = "auto"
        batch_size: int = 32
        # Zero-shot probability (softmax over categories and non-products) a crop's
        # category needs to be a product; a brand's (over brands and "no brand").
        min_score: float = 0.35
        min_brand_score: float = 0.5
        # Confidence of a brand read on screen; lower for brands that are everyday words.
        text_confidence: float = 0.9
        common_word_text_confidence: float = 0.5
        # Crops: at most this many per clip and per track; the box widened by this share
        # of its size on each side; a box's frame at most this far from its time.
        max_crops: int = 64
        max_crops_per_track: int = 4
        crop_margin: float = 0.1
        max_time_gap_s: float = 1.0
        # Without object boxes: at most this many frames, whole and central crop.
        max_frames: int = 32
        center_crop: float = 0.6
        # A text hit names an unbranded vision product on screen within this window.
        join_window_s: float = 1.0

    Result = ProductDetectionResult

    def __init__(self, params: Params | None = None, device: str | None = None) -> None:
        params = params if params is not None else self.Params()
        if params.model != "auto" and params.model not in MODELS:
            raise ValueError(
                f"model must be auto or one of {', '.join(MODELS)}, got {params.model!r}"
            )
        super().__init__(params, device)

    def model_choice(self) -> str | None:
        choice = self.params.model
        if choice == "auto":
            choice = "vit-l-14" if self.device.startswith("cuda") else "vit-b-32"
        return MODELS[choice]

    def load(self, weights: weights_layer.Weights) -> None:
        self.clip = ClipZeroShot(
            weights, self.device, {"product": PRODUCT_VOCABULARY, "brand": BRAND_VOCABULARY}
        )

    # --- without the model ----------------------------------------------------------------

    def measure_only(self, clip: Clip) -> Result:
        """No CLIP: the brands read on screen and the product candidates among the object
        tracks; which are products is the model's."""
        validate_frames(clip, self.name)
        mode, _, _ = self._plan(clip)
        return self._result(clip, mode, None, None)

    # --- batch ----------------------------------------------------------------------------

    def prepare(self, clip: Clip) -> Prepared:
        validate_frames(clip, self.name)
        mode, crops, tracks = self._plan(clip)
        return Prepared(inputs=[c.image for c in crops], state=(mode, crops, tracks))

    def infer(self, inputs: list[np.ndarray]):
        return self.clip.embed(inputs, "pad", self.params.batch_size)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list) -> Result:
        mode, crops, tracks = prepared.state
        return self._finish(clip, mode, crops, tracks, self.clip.stack(outputs))

    # --- one clip -------------------------------------------------------------------------

    def _plan(self, clip: Clip) -> tuple[str, list[_Crop], list[_Track]]:
        """The crops to score: object boxes when object_detection gave any, else frames."""
        p = self.params
        frames, times = clip.frames, np.asarray(clip.timestamps_s, dtype=np.float64)
        duration = clip_duration(clip, times)
        detected = clip.upstream_result(ObjectDetectionResult)
        crops: list[_Crop] = []
        tracks: list[_Track] = []
        if detected is not None:
            ranked = sorted(detected.objects, key=lambda o: -_float(o.max_confidence, 0.0))
            for obj in ranked:
                boxes = [b for b in map(_valid_box, obj.boxes) if b is not None]
                boxes.sort(key=lambda b: -b[2])
                chosen = []
                for t, bbox, _ in boxes[: max(0, p.max_crops_per_track)]:
                    if len(crops) + len(chosen) >= p.max_crops:
                        break
                    j = int(np.argmin(np.abs(times - t)))
                    if abs(times[j] - t) > p.max_time_gap_s:
                        continue
                    image = _crop(frames[j], bbox, p.crop_margin)
                    if image is not None:
                        chosen.append(_Crop(image, len(tracks), t))
                if not chosen:
                    continue
                box_times = [c.time_s for c in chosen]
                first = _float(obj.first_s, min(box_times))
                last = max(first, _float(obj.last_s, max(box_times)))
                # first_s..last_s are sampled-frame times: a track seen in one frame would
                # get no time at all. Its screen_share (of the clip's time) sets the least.
                share = min(1.0, max(0.0, _float(obj.screen_share, 0.0)))
                tracks.append(
                    _Track(
                        track_id=obj.track_id,
                        first_s=first,
                        last_s=min(duration, max(last, first + share * duration)),
                    )
                )
                crops += chosen
                if len(crops) >= p.max_crops:
                    break
        if crops:
            return "objects", crops, tracks
        # No boxes: whole frames and their centres, at most max_frames spread evenly.
        n = len(frames)
        picks = np.unique(np.linspace(0, n - 1, min(n, max(1, p.max_frames))).round().astype(int))
        for j in picks:
            frame = frames[j]
            h, w = frame.shape[:2]
            ch, cw = max(1, round(h * p.center_crop)), max(1, round(w * p.center_crop))
            top, left = (h - ch) // 2, (w - cw) // 2
            crops.append(_Crop(frame, int(j), float(times[j])))
            crops.append(_Crop(frame[top : top + ch, left : left + cw], int(j), float(times[j])))
        return "frames", crops, tracks

    def _finish(
        self, clip: Clip, mode: str, crops: list[_Crop], tracks: list[_Track], emb
    ) -> Result:
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        duration = clip_duration(clip, times)
        product_p = self.clip.probabilities(emb, "product")
        brand_p = self.clip.probabilities(emb, "brand")
        vision: list[VisionProduct] = []
        if mode == "objects":
            groups = np.array([c.group for c in crops])
            for k, track in enumerate(tracks):
                rows = np.flatnonzero(groups == k)
                found = self._decide(product_p[rows].mean(0), brand_p[rows].mean(0))
                if found is None:
                    continue
                label, score, brand, brand_score = found
                vision.append(
                    VisionProduct(
                        label,
                        brand,
                        score,
                        [(track.first_s, track.last_s)],
                        brand_score,
                        [track.track_id],
                        len(rows),
                    )
                )
        else:
            vision = self._frame_products(crops, product_p, brand_p, times, duration)
        return self._result(clip, mode, vision, len(crops))

    def _result(
        self, clip: Clip, mode: str, vision: list[VisionProduct] | None, crops: int | None
    ) -> Result:
        """The result from CLIP's products (None without the model: products and
        crops_scored null) and what needs no model: brands read on screen, candidates."""
        p = self.params
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        duration = clip_duration(clip, times)
        overlay = clip.upstream_result(TextOverlayResult)
        hits = brand_hits(
            overlay.texts if overlay is not None else None,
            p.text_confidence,
            p.common_word_text_confidence,
        )
        products = None
        if vision is not None:
            products = join_products(vision, hits, duration, p.join_window_s)
        return self.Result(
            products=products,
            candidates=self._candidates(clip, hits, duration),
            brands_in_text=[
                BrandInText(
                    brand=h.brand,
                    text=h.text,
                    start_s=round(h.start_s, 3),
                    end_s=round(h.end_s, 3),
                    confidence=round(h.confidence, 4),
                )
                for h in hits
            ],
            mode=mode,  # type: ignore[arg-type]
            crops_scored=crops,
        )

    def _candidates(
        self, clip: Clip, hits: list[BrandHit], duration: float
    ) -> list[ProductCandidate]:
        """object_detection's tracks that may be products, first seen first, each with the
        brands read on screen while it is."""
        detected = clip.upstream_result(ObjectDetectionResult)
        if detected is None:
            return []
        out = []
        for obj in detected.objects:
            if obj.label in NOT_CANDIDATES:
                continue
            first = _float(obj.first_s, 0.0)
            last = max(first, _float(obj.last_s, first))
            brands = [
                h.brand
                for h in hits
                if _overlap([(first, last)], [(h.start_s, h.end_s)], self.params.join_window_s)
            ]
            out.append(
                ProductCandidate(
                    track_id=obj.track_id,
                    label=obj.label,
                    first_s=round(first, 3),
                    last_s=round(last, 3),
                    screen_share=round(min(1.0, max(0.0, _float(obj.screen_share, 0.0))), 4),
                    confidence=round(_float(obj.max_confidence, 0.0), 4),
                    brands=list(dict.fromkeys(brands)),
                )
            )
        out.sort(key=lambda c: (c.first_s, c.track_id))
        return out

    def _decide(
        self, product: np.ndarray, brand: np.ndarray
    ) -> tuple[str, float, str | None, float] | None:
        """(category, its probability, brand or None, brand probability) for one set of
        mean probabilities, or None when no product category reaches ``min_score`` or a
        non-product class wins."""
        best = int(np.argmax(product))
        if best >= _N_CATEGORIES or product[best] < self.params.min_score:
            return None
        b = int(np.argmax(brand))
        key = BRAND_VOCABULARY.labels[b]
        has_brand = key != _NO_BRAND and brand[b] >= self.params.min_brand_score
        return (
            CATEGORIES[best],
            float(product[best]),
            key if has_brand else None,
            float(brand[b]) if has_brand else 0.0,
        )

    def _frame_products(
        self,
        crops: list[_Crop],
        product_p: np.ndarray,
        brand_p: np.ndarray,
        times: np.ndarray,
        duration: float,
    ) -> list[VisionProduct]:
        """Frames mode: per frame the better of whole and centre, then each frame's
        product spans half the sampling step either side."""
        step = float(np.median(np.diff(times))) if len(times) > 1 else duration
        picked: dict[tuple[str, str | None], VisionProduct] = {}
        scores: dict[tuple[str, str | None], list[float]] = {}
        for r in range(0, len(crops), 2):
            rows = [r, r + 1] if r + 1 < len(crops) else [r]
            cat_best = [float(product_p[q, :_N_CATEGORIES].max()) for q in rows]
            q = rows[int(np.argmax(cat_best))]
            found = self._decide(product_p[q], brand_p[q])
            if found is None:
                continue
            label, score, brand, brand_score = found
            t = crops[q].time_s
            span = (max(0.0, t - step / 2), min(duration, t + step / 2))
            key = (label, brand)
            if key not in picked:
                picked[key] = VisionProduct(label, brand, 0.0, [], 0.0, [], 0)
                scores[key] = []
            vp = picked[key]
            vp.spans.append(span)
            vp.crops += 1
            vp.brand_confidence = max(vp.brand_confidence, brand_score)
            scores[key].append(score)
        for key, vp in picked.items():
            vp.confidence = float(np.mean(scores[key]))
        return list(picked.values())


# ---------------------------------------------------------------------------------------
# Helpers


def _float(value: float, default: float) -> float:
    """``value``, or ``default`` when it is not finite."""
    return value if math.isfinite(value) else default
