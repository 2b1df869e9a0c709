"""product_detection: brand words in on-screen text, the join of vision and text (crafted
upstream results, independent of the weights), the crops cut from object boxes, and the
analyzer end to end on tiny synthetic CLIP weights with the zero-shot scores pinned."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tiktok_analyzer.analyzers._clip import build_clip_model
from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.products import (
    BRAND_VOCABULARY,
    BRANDS,
    CATEGORIES,
    PRODUCT_VOCABULARY,
    BrandHit,
    ProductDetection,
    VisionProduct,
    brand_hits,
    join_products,
    normalize_text,
)
from tiktok_analyzer.analyzers.results.ocr import TextTrack
from tiktok_analyzer.analyzers.weights import MODE_ENV, load_manifest

from . import upstream as ups

# ---------------------------------------------------------------------------------------
# Text


text = ups.text


def tracks(*items: dict) -> list[TextTrack]:
    """text_overlay's texts as the analyzer reads them."""
    return [TextTrack.model_validate(t) for t in items]


@pytest.mark.parametrize(
    ("words", "brands"),
    [
        ("Nike", ["nike"]),
        ("JUST DO IT - NIKE", ["nike"]),
        ("nike.com", ["nike"]),
        ("Coca Cola", ["coca_cola"]),
        ("COCA-COLA zero", ["coca_cola"]),
        ("cocacola", ["coca_cola"]),
        ("ice cold coke", ["coca_cola"]),
        ("L'Oréal Paris", ["loreal"]),
        ("loreal haul", ["loreal"]),
        ("H&M try-on", ["h_and_m"]),
        ("McDonalds run", ["mcdonalds"]),
        ("new iPhone 16 vs Galaxy S24", ["apple", "samsung"]),
        ("Red Bull gives you wings", ["red_bull"]),
        ("Nikelodeon", []),  # not a whole word
        ("honey mustard", []),
        ("", []),
    ],
)
def test_brand_words_in_text(words, brands):
    hits = brand_hits(tracks(text(words, 1.0, 2.0)))
    assert sorted(h.brand for h in hits) == sorted(brands)


def test_brand_hits_keep_time_and_confidence():
    hits = brand_hits(tracks(text("Nike", 2.5, 4.0), text("apple pie recipe", 0.0, 1.0)))
    nike, apple = sorted(hits, key=lambda h: h.brand, reverse=True)
    assert (nike.brand, nike.start_s, nike.end_s, nike.confidence) == ("nike", 2.5, 4.0, 0.9)
    # an everyday word: a weaker hit
    assert (apple.brand, apple.confidence) == ("apple", 0.5)


def test_malformed_text_items_are_refused_or_skipped():
    # a text its model refuses never reaches brand_hits: reading the upstream fails loudly
    for item in [{"text": "Nike"}, {"start_s": 0, "end_s": 1}, "Nike", None]:
        with pytest.raises(ValidationError):
            TextTrack.model_validate(item)
    # one whose times are not finite is skipped
    assert brand_hits(tracks(text("Nike", float("nan"), 1))) == []
    assert brand_hits(None) == [] and brand_hits([]) == []
    assert normalize_text("  L'Oréal  H&M!") == "loreal h & m"


# ---------------------------------------------------------------------------------------
# The join


def hit(brand: str, a: float, b: float, conf: float = 0.9, words: str = "") -> BrandHit:
    return BrandHit(brand, words or brand, a, b, conf)


def test_text_alone_is_a_brand_product_from_the_texts_time():
    (p,) = join_products([], brand_hits(tracks(text("Nike", 2.0, 4.0))), duration_s=10.0)
    assert (p.brand, p.label, p.source) == ("nike", "sportswear", "text")
    assert (p.first_s, p.last_s, p.screen_time_s, p.screen_share) == (2.0, 4.0, 2.0, 0.2)
    assert p.confidence == 0.9 and p.texts == ["Nike"]


def test_text_confirms_the_same_brand_seen_by_vision():
    seen = VisionProduct("sneakers", "nike", 0.6, [(1.0, 3.0)], 0.7, [4], 3)
    (p,) = join_products([seen], [hit("nike", 2.5, 5.0)], duration_s=10.0)
    assert (p.label, p.brand, p.source, p.track_ids) == ("sneakers", "nike", "both", [4])
    assert p.confidence == pytest.approx(1 - 0.4 * 0.1)
    assert (p.first_s, p.last_s, p.screen_time_s) == (1.0, 5.0, 4.0)


def test_text_names_an_unbranded_product_on_screen_at_the_time():
    early = VisionProduct("sneakers", None, 0.5, [(0.0, 2.0)], track_ids=[1])
    late = VisionProduct("soda can", None, 0.6, [(6.0, 8.0)], track_ids=[2])
    products = join_products([early, late], [hit("coca_cola", 6.5, 7.0)], duration_s=10.0)
    by_label = {p.label: p for p in products}
    assert by_label["soda can"].brand == "coca_cola" and by_label["soda can"].source == "both"
    assert by_label["sneakers"].brand is None and by_label["sneakers"].source == "vision"
    assert [p.label for p in products] == ["sneakers", "soda can"]  # by first appearance


def test_text_far_from_any_vision_product_stands_alone():
    seen = VisionProduct("lipstick", None, 0.5, [(0.0, 1.0)], track_ids=[1])
    products = join_products([seen], [hit("nike", 5.0, 6.0)], duration_s=10.0, join_window_s=1.0)
    assert {(p.label, p.brand, p.source) for p in products} == {
        ("lipstick", None, "vision"),
        ("sportswear", "nike", "text"),
    }


def test_text_touching_within_the_window_joins():
    seen = VisionProduct("sneakers", None, 0.5, [(0.0, 1.0)], track_ids=[1])
    (p,) = join_products([seen], [hit("nike", 1.8, 3.0)], duration_s=10.0, join_window_s=1.0)
    assert (p.brand, p.source, p.first_s, p.screen_time_s) == ("nike", "both", 0.0, 2.2)


def test_screen_time_is_the_union_of_spans_and_one_entry_per_product():
    a = VisionProduct("sneakers", "nike", 0.5, [(0.0, 2.0)], 0.6, [1])
    b = VisionProduct("sneakers", "nike", 0.7, [(1.0, 3.0), (8.0, 9.0)], 0.6, [2])
    hits = [hit("nike", 2.0, 2.5), hit("nike", 8.5, 9.5)]
    (p,) = join_products([a, b], hits, duration_s=10.0)
    assert p.track_ids == [1, 2] and p.source == "both"
    assert p.screen_time_s == pytest.approx(3.0 + 1.5)
    assert p.screen_share == pytest.approx(0.45)


# ---------------------------------------------------------------------------------------
# The analyzer (tiny synthetic weights; zero-shot scores pinned where the test needs them)


@pytest.fixture(scope="module")
def analyzer():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, "synthetic-tiny")
        yield ProductDetection()


def coloured_frames(n: int = 6, h: int = 448, w: int = 252) -> np.ndarray:
    """Frame k is filled with grey level 20 * k: a crop tells which frame it came from."""
    return np.stack([np.full((h, w, 3), 20 * k, np.uint8) for k in range(n)])


def make_clip(frames: np.ndarray, upstream=None, fps: float = 1.0) -> Clip:
    n, h, w = frames.shape[:3]
    return Clip(
        meta=ClipMeta(duration_s=n / fps, fps=fps, width=w, height=h),
        frames=frames,
        timestamps_s=np.arange(n) / fps,
        frame_indices=np.arange(n),
        upstream=upstream or {},
    )


def track(
    track_id: int,
    first: float,
    last: float,
    boxes: list[tuple[float, list[float]]],
    share: float = 0.1,
):
    return ups.track("bottle", track_id, first, last, boxes, share=share)


def pinned(monkeypatch, analyzer, product: str, score: float, brand: str, brand_score: float):
    """Every crop scores ``product`` at ``score`` and ``brand`` at ``brand_score``."""

    def probabilities(emb, vocabulary):
        vocab = PRODUCT_VOCABULARY if vocabulary == "product" else BRAND_VOCABULARY
        label, p = (product, score) if vocabulary == "product" else (brand, brand_score)
        k = vocab.labels.index(label)
        rows = np.full((len(emb), len(vocab.labels)), (1 - p) / (len(vocab.labels) - 1))
        rows[:, k] = p
        return rows

    monkeypatch.setattr(analyzer.clip, "probabilities", probabilities)


def test_schema_on_synthetic_weights(analyzer):
    up = {"text_overlay": ups.texts([text("Nike", 2.0, 4.0)])}
    result = analyzer.analyze(make_clip(coloured_frames(), up))
    assert analyzer.weights == "synthetic-tiny"
    assert analyzer.model_name == "clip-vit-b-32-openai"  # auto on a CPU
    data = result.model_dump(mode="json")
    assert data["mode"] == "frames" and data["crops_scored"] == 12
    for p in data["products"]:
        assert {"label", "brand", "first_s", "screen_share", "confidence", "source"} <= set(p)
        assert 0 <= p["screen_share"] <= 1 and 0 <= p["confidence"] <= 1
    nike = [p for p in data["products"] if p["brand"] == "nike"]
    assert len(nike) == 1 and nike[0]["first_s"] == 2.0
    assert data["brands_in_text"] == [
        {"brand": "nike", "text": "Nike", "start_s": 2.0, "end_s": 4.0, "confidence": 0.9}
    ]


def test_crops_come_from_the_frame_nearest_each_box(analyzer, monkeypatch):
    seen = []

    def embed(images, fit, batch):
        seen.extend(images)
        return np.zeros((len(images), 4), np.float32)

    monkeypatch.setattr(analyzer.clip, "embed", embed)
    pinned(monkeypatch, analyzer, "sneakers", 0.9, "no brand", 0.9)
    box = [0.25, 0.5, 0.75, 1.0]
    up = {"object_detection": ups.objects([track(7, 1.0, 3.0, [(1.2, box), (2.9, box)])])}
    result = analyzer.analyze(make_clip(coloured_frames(), up))
    assert result.mode == "objects" and result.crops_scored == 2
    # frames 1 and 3 (grey 20 and 60), the box widened by 10 % on each side
    assert sorted(int(img.mean()) for img in seen) == [20, 60]
    # x: 0.2..0.8 of 252 px -> 50..202; y: 0.45..1.0 of 448 px -> 201..448 (clamped)
    assert [img.shape[:2] for img in seen] == [(247, 152)] * 2
    (p,) = result.products
    assert (p.label, p.brand, p.first_s, p.last_s, p.track_ids) == ("sneakers", None, 1.0, 3.0, [7])


def test_vision_and_text_join_end_to_end(analyzer, monkeypatch):
    pinned(monkeypatch, analyzer, "sneakers", 0.8, "nike", 0.7)
    box = [0.1, 0.1, 0.6, 0.6]
    up = {
        "object_detection": ups.objects([track(3, 1.0, 4.0, [(1.0, box), (3.0, box)])]),
        "text_overlay": ups.texts([text("NIKE air", 3.5, 5.0)]),
    }
    (p,) = analyzer.analyze(make_clip(coloured_frames(), up)).products
    assert (p.label, p.brand, p.source, p.first_s, p.last_s) == (
        "sneakers",
        "nike",
        "both",
        1.0,
        5.0,
    )
    assert p.confidence == pytest.approx(1 - 0.2 * 0.1, abs=1e-3)
    assert p.screen_share == pytest.approx(4.0 / 6.0, abs=1e-3)


def test_a_score_below_the_threshold_is_not_a_product(analyzer, monkeypatch):
    box = [0.1, 0.1, 0.6, 0.6]
    up = {"object_detection": ups.objects([track(3, 1.0, 4.0, [(1.0, box)])])}
    clip = make_clip(coloured_frames(), up)
    pinned(monkeypatch, analyzer, "lipstick", analyzer.params.min_score - 0.01, "no brand", 0.9)
    assert analyzer.analyze(clip).products == []
    pinned(monkeypatch, analyzer, "lipstick", analyzer.params.min_score + 0.01, "no brand", 0.9)
    assert [p.label for p in analyzer.analyze(clip).products] == ["lipstick"]
    # a non-product class winning is no product either
    pinned(monkeypatch, analyzer, "not a product: face", 0.9, "no brand", 0.9)
    assert analyzer.analyze(clip).products == []
    # a weak brand is no brand
    pinned(
        monkeypatch, analyzer, "lipstick", 0.9, "maybelline", analyzer.params.min_brand_score - 0.01
    )
    assert [p.brand for p in analyzer.analyze(clip).products] == [None]


def test_frames_mode_spans_the_sampling_step(analyzer, monkeypatch):
    pinned(monkeypatch, analyzer, "energy drink can", 0.9, "red_bull", 0.9)
    (p,) = analyzer.analyze(make_clip(coloured_frames(4))).products
    assert (p.label, p.brand, p.source) == ("energy drink can", "red_bull", "vision")
    assert (p.first_s, p.last_s, p.screen_share) == (0.0, 3.5, pytest.approx(3.5 / 4.0))


def test_a_track_seen_in_one_frame_keeps_its_screen_share(analyzer, monkeypatch):
    pinned(monkeypatch, analyzer, "sneakers", 0.9, "no brand", 0.9)
    box = [0.1, 0.1, 0.6, 0.6]
    up = {"object_detection": ups.objects([track(3, 2.0, 2.0, [(2.0, box)], share=0.25)])}
    (p,) = analyzer.analyze(make_clip(coloured_frames(), up)).products
    assert (p.first_s, p.last_s, p.screen_time_s) == (2.0, 3.5, 1.5)  # 0.25 of 6 s


def test_bad_boxes_fall_back_to_frames(analyzer):
    bad = [
        ups.track("x", 1, 0.0, 0.0, [(0.0, [0.5, 0.5, 0.4, 0.4])]),  # backwards
        ups.track("x", 2, 50.0, 50.0, [(50.0, [0, 0, 1, 1])]),  # long after every frame
        ups.track("x", 3, 0.0, 1.0, [(0.0, [0, 0, 1])]),  # not a box
        ups.track("x", 4, 0.0, 1.0),  # no boxes
    ]
    result = analyzer.analyze(make_clip(coloured_frames(3), {"object_detection": ups.objects(bad)}))
    assert result.mode == "frames"
    # an object its model refuses fails the clip loudly
    garbled = {"object_detection": {**ups.objects(bad), "objects": ["nonsense"]}}
    with pytest.raises(ValidationError, match="objects"):
        analyzer.analyze(make_clip(coloured_frames(3), garbled))


def test_batch_keeps_each_clips_failure_its_own(analyzer):
    good = make_clip(coloured_frames(3), {"text_overlay": ups.texts([text("Pepsi", 0, 1)])})
    empty = make_clip(np.zeros((0, 32, 32, 3), np.uint8))
    tiny = make_clip(np.full((2, 16, 16, 3), 200, np.uint8))
    out = analyzer.analyze_batch([good, empty, tiny])
    assert isinstance(out[0], ProductDetection.Result)
    assert [p.brand for p in out[0].products if p.source == "text"] == ["pepsi"]
    assert isinstance(out[1], NotApplicable)
    assert isinstance(out[2], ValueError) and "16x16 pixels are too small" in str(out[2])


def test_vocabularies():
    assert len(set(CATEGORIES)) == len(CATEGORIES) >= 50
    assert len({b.key for b in BRANDS}) == len(BRANDS) >= 50
    # every brand's own name is found by its own pattern
    for b in BRANDS:
        assert [h.brand for h in brand_hits(tracks(text(b.name, 0, 1)))] == [b.key], b.name


def test_full_config_is_vit_b_32():
    import torch

    config = load_manifest()["product_detection/clip-vit-b-32-openai"].synthetic["full"]
    with torch.device("meta"):
        model = build_clip_model(config)
    # open_clip's published figure for ViT-B-32: 151.28 M parameters
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(151.28e6, rel=1e-4)
