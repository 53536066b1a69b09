"""Device leases with real lock files and real processes (CPU cores by affinity; the GPU kind
only sets CUDA_VISIBLE_DEVICES, which is all it does on a machine with GPUs too)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from deploytune.parallel.leases import (
    LOG_NAME,
    LeaseImpossible,
    Leases,
    Resources,
    max_in_use,
)


def test_resources_from_dict_count_and_list() -> None:
    r = Resources.from_dict({"kind": "gpu", "devices": 4, "per_trial": "{tp}"})
    assert r.devices == ("0", "1", "2", "3")
    assert r.needed({"tp": 2}) == 2
    assert Resources.from_dict({"devices": ["GPU-1a", "GPU-2b"]}).needed({}) == 1


def test_per_trial_product_template() -> None:
    r = Resources.from_dict({"devices": 8, "per_trial": "{tp}*{pp}"})
    assert r.needed({"tp": 2, "pp": 4}) == 8


@pytest.mark.parametrize("data, field", [
    ({"devices": 0}, "devices"),
    ({"devices": ["a b"]}, "devices"),
    ({"devices": [0, 0]}, "devices"),
    ({"devices": 2, "kind": "tpu"}, "kind"),
    ({"devices": ["x"], "kind": "cpu"}, "devices"),
    ({"devices": 2, "per_trial": 0}, "per_trial"),
    ({"devices": 2, "gpus": 1}, "gpus"),
])
def test_bad_resources_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        Resources.from_dict(data)


def test_need_beyond_the_machine_is_impossible() -> None:
    r = Resources.from_dict({"devices": 4, "per_trial": "{tp}"})
    with pytest.raises(LeaseImpossible, match="needs 8 gpu devices"):
        r.needed({"tp": 8})
    with pytest.raises(LeaseImpossible, match="not a number"):
        r.needed({"tp": "auto"})


def test_leases_are_exclusive_and_released(tmp_path: Path) -> None:
    leases = Leases(Resources.from_dict({"devices": 3}), tmp_path)
    a = leases.acquire(2)
    with pytest.raises(TimeoutError):
        leases.acquire(2, timeout_s=0.3)
    b = leases.acquire(1)
    assert set(a.devices).isdisjoint(b.devices)
    leases.release(a)
    c = leases.acquire(2, timeout_s=1)
    assert set(c.devices).isdisjoint(b.devices)
    assert max_in_use(tmp_path / LOG_NAME) == 3


def test_gpu_lease_sets_visible_devices_and_restores(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    leases = Leases(Resources.from_dict({"devices": [3, 5]}), tmp_path)
    lease = leases.acquire(2)
    with lease.applied():
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"


def _child_affinity(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(sorted(os.sched_getaffinity(0)))


def test_cpu_lease_pins_the_processes_it_starts(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    leases = Leases(Resources("cpu", (str(cores[-1]),)), tmp_path)
    lease = leases.acquire(1)
    before = os.sched_getaffinity(0)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with lease.applied():
        p = ctx.Process(target=_child_affinity, args=(queue,))
        p.start()
        p.join(10)
    assert queue.get(timeout=5) == [cores[-1]]
    assert os.sched_getaffinity(0) == before


def _hold_then_die(folder: str, ready: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    leases = Leases(Resources.from_dict({"devices": 2}), Path(folder))
    leases.acquire(2)
    ready.set()
    time.sleep(60)


def test_a_killed_holder_frees_its_devices(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_then_die, args=(str(tmp_path), ready))
    p.start()
    assert ready.wait(10)
    leases = Leases(Resources.from_dict({"devices": 2}), tmp_path)
    with pytest.raises(TimeoutError):
        leases.acquire(1, timeout_s=0.3)
    p.kill()
    p.join()
    assert leases.acquire(2, timeout_s=2).devices == ("0", "1")


def test_the_lease_folder_stays_beside_the_study(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from deploytune.parallel.coordination import lease_folder_for

    monkeypatch.setenv("DEPLOYTUNE_HOST", "../../outside")
    folder = lease_folder_for(f"sqlite:///{tmp_path / 'study.db'}", "s")
    assert folder.parent == tmp_path / "study.db.leases"
    assert folder.name not in (".", "..")
    assert folder.resolve().parent == tmp_path.resolve() / "study.db.leases"
