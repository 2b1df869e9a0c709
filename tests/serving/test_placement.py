"""The multi-GPU plan (serving/placement.py) for 1, 2, 4 and 8 cards: at the H100's 80 GB
every card serves everything; on smaller cards the models split by their measured memory,
the largest on different cards, every model somewhere, no card over its usable memory."""

from __future__ import annotations

import pytest

from tiktok_analyzer.serving.launcher import default_model_repository
from tiktok_analyzer.serving.placement import (
    HEADROOM,
    Card,
    PlacementError,
    cards_for,
    instance_counts,
    load_memory_table,
    model_needs,
    parse_gpus,
    plan,
)

REPO = default_model_repository()
MODELS = sorted(d.name for d in REPO.iterdir() if (d / "config.pbtxt").exists())
H100_MIB = 81559  # nvidia-smi's memory.total of the bench's H100 80GB HBM3
NEEDS = model_needs(MODELS, REPO)
GPU_MODELS = sorted((m for m in MODELS if NEEDS[m]), key=lambda m: -NEEDS[m])


def cards(n: int, mib: int) -> list[Card]:
    return [Card(i, mib) for i in range(n)]


def check(placement, models=MODELS) -> None:
    """The invariants every plan keeps."""
    for i, card in enumerate(placement.cards):
        assert placement.used_mib(i) <= card.usable_mib(HEADROOM), (card, placement.models[i])
    for m in models:
        assert placement.cards_of(m), f"{m} is on no card"


def test_table_covers_every_gpu_model_with_the_measured_figures() -> None:
    table = load_memory_table()
    counts = instance_counts(REPO, MODELS)
    assert len(counts) == 11 and set(counts) <= set(table)
    # bench/results/gpu_h100.md, 2026-12-06 run C: video_llava's and Whisper's stubs.
    assert table["video_llava"] == 36758 and table["speech_transcription"] == 8310
    # A model's need is one instance's peak times its KIND_GPU instances.
    assert NEEDS["video_llava"] == 36758 and counts["video_llava"] == 1
    assert NEEDS["object_detection"] == 2 * table["object_detection"]
    assert NEEDS["cut_analysis"] == 0
    assert sum(NEEDS.values()) == 75518


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_80gb_cards_each_serve_a_full_replica(n: int) -> None:
    placement = plan(MODELS, cards(n, H100_MIB), NEEDS)
    check(placement)
    assert placement.replicated
    assert all(set(models) == set(MODELS) for models in placement.models)
    assert [c.index for c, _ in placement.servers()] == list(range(n))


@pytest.mark.parametrize("n", [2, 4, 8])
@pytest.mark.parametrize("mib", [40960, 49152])
def test_smaller_cards_split_with_the_largest_apart(n: int, mib: int) -> None:
    placement = plan(MODELS, cards(n, mib), NEEDS)
    check(placement)
    assert not placement.replicated
    # The largest do not all land on one card: no card holds every GPU model, and the three
    # largest together span more than one card.
    assert GPU_MODELS[:2] == ["video_llava", "speech_transcription"]
    assert not any(set(GPU_MODELS) <= set(ms) for ms in placement.models)
    assert len({i for m in GPU_MODELS[:3] for i in placement.cards_of(m)}) > 1
    # CPU models go to every card's server.
    assert all("cut_analysis" in ms for ms in placement.models)


def test_40gb_pair_places_llava_alone_with_what_fits_beside_it() -> None:
    placement = plan(MODELS, cards(2, 40960), NEEDS)
    check(placement)
    gpu0 = {m for m in placement.models[0] if NEEDS[m]}
    gpu1 = {m for m in placement.models[1] if NEEDS[m]}
    assert "video_llava" in gpu0 and "video_llava" not in gpu1
    assert set(GPU_MODELS) - {"video_llava"} <= gpu1
    assert placement.used_mib(0) > NEEDS["video_llava"]  # the leftover room is used


def test_mixed_cards_put_llava_on_the_one_it_fits() -> None:
    mixed = [Card(0, 24576), Card(1, 81559)]
    placement = plan(MODELS, mixed, NEEDS)
    check(placement)
    assert placement.cards_of("video_llava") == [1]


def test_a_model_that_fits_nowhere_is_refused_in_one_line() -> None:
    with pytest.raises(PlacementError) as err:
        plan(MODELS, cards(8, 24576), NEEDS)
    assert "video_llava needs 36758 MiB" in str(err.value)
    assert "\n" not in str(err.value)


def test_too_little_memory_in_all_is_refused() -> None:
    with pytest.raises(PlacementError, match="no placement on 1 card"):
        plan(MODELS, cards(1, 40960), NEEDS)


def test_a_subset_fits_where_the_whole_set_does_not() -> None:
    subset = ["cut_analysis", "speech_transcription", "speech_rate"]
    placement = plan(subset, cards(2, 16384), model_needs(subset, REPO))
    assert placement.replicated and placement.models[0] == tuple(subset)


def test_an_unmeasured_gpu_model_is_refused_not_guessed() -> None:
    table = {k: v for k, v in load_memory_table().items() if k != "text_overlay"}
    with pytest.raises(PlacementError, match="no measured GPU memory for text_overlay"):
        model_needs(MODELS, REPO, table)


def test_parse_gpus() -> None:
    assert parse_gpus("all") is None
    assert parse_gpus("0, 2,3") == [0, 2, 3]
    for bad in ("", "x", "0,0", "-1"):
        with pytest.raises(ValueError):
            parse_gpus(bad)


def test_cards_for_named_indices_with_a_given_size() -> None:
    assert cards_for("1,3", memory_mib=40960) == [Card(1, 40960), Card(3, 40960)]


def test_cpu_models_configs_for_a_gpu_host_need_no_gpu_memory() -> None:
    """eye_tracking has a configs/gpu.pbtxt, but of KIND_CPU instances: no card is planned
    for it and no GPU memory figure is asked of it."""
    assert (REPO / "eye_tracking" / "configs" / "gpu.pbtxt").exists()
    assert "eye_tracking" not in instance_counts(REPO, MODELS)
    assert NEEDS["eye_tracking"] == 0
