"""The topology snapshot from recorded NVML answers: link codes, UUID matching, flags, record/replay."""

import json

import pytest

from conftest import ROOT
from moeplan.errors import SpecError
from moeplan.profile.nvml import NvLink, RecordedBox, RecordedNvml, record
from moeplan.profile.topology import CudaDevice, normalize_uuid, snapshot

RECORDED = ROOT / "moeplan" / "profile" / "recorded"
HGX, PCIE = RECORDED / "hgx-h100-8.json", RECORDED / "pcie-vm-2.json"


def test_hgx_nvswitch_box_is_all_to_all_nv18_with_no_flags():
    api = RecordedNvml.from_file(HGX)
    topo = snapshot(api, list(range(8)), None, {"PATH": "/bin"})
    assert len(topo.pairs) == 8 * 7
    # every GPU has 18 active NVLink4 links, all ending at an NVSwitch: nvidia-smi shows NV18 for every pair
    assert {p.link for p in topo.pairs} == {"NV18"}
    assert all(g.nvswitch and len(g.nvlinks) == 18 for g in topo.gpus)
    # PCIe paths: same socket NODE, across sockets SYS (GPUs 0-3 on NUMA 0, 4-7 on NUMA 1)
    paths = {(p.a, p.b): p.path for p in topo.pairs}
    assert paths[(0, 3)] == "NODE" and paths[(0, 4)] == "SYS" and paths[(5, 7)] == "NODE"
    assert [g.numa_node for g in topo.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert topo.flags == []
    assert topo.gpus[0].clock_reasons == ["GpuIdle"]


def test_pcie_vm_box_raises_every_flag():
    api = RecordedNvml.from_file(PCIE)
    topo = snapshot(api, [0, 1], None, {"NCCL_P2P_DISABLE": "1", "NCCL_DEBUG": "INFO", "HOME": "/root"})
    flags = {f.code: f for f in topo.flags}
    assert set(flags) == {"pcie_downtrained", "throttling", "p2p_disabled", "vm", "nccl_env"}
    assert flags["pcie_downtrained"].gpus == [1] and "x8 of x16 (Gen4 of Gen5)" in flags["pcie_downtrained"].message
    assert flags["throttling"].gpus == [0] and "SwPowerCap" in flags["throttling"].message and "1410 of 1755 MHz" in flags["throttling"].message
    assert flags["p2p_disabled"].gpus == [0, 1] and "0→1 CNS/CNS" in flags["p2p_disabled"].message
    assert "passthrough" in flags["vm"].message and "hypervisor" in flags["vm"].message
    assert flags["nccl_env"].message.endswith("NCCL_DEBUG=INFO NCCL_P2P_DISABLE=1")
    assert topo.nccl_env == {"NCCL_P2P_DISABLE": "1", "NCCL_DEBUG": "INFO"}
    assert [p.link for p in topo.pairs] == ["SYS", "SYS"]
    assert topo.pairs[0].p2p == {"read": "CNS", "write": "CNS", "nvlink": "NS"}


def test_gen_below_max_at_full_width_is_only_an_idle_note():
    box = RecordedBox.model_validate_json(PCIE.read_text())
    box.devices[1].pcie.cur_width = 16  # Gen4 x16 of Gen5 x16: idle power saving looks like this
    topo = snapshot(RecordedNvml(box), [1], None, {})
    assert [f.code for f in topo.flags if f.code.startswith("pcie")] == ["pcie_gen_below_max"]


def test_direct_nvlinks_count_links_whose_remote_is_the_peer():
    box = RecordedBox.model_validate_json(PCIE.read_text())
    for me, peer in ((0, 1), (1, 0)):  # an NVLink bridge: 4 links straight to the other GPU
        box.devices[me].nvlinks = [NvLink(link=i, remote_bus_id=box.devices[peer].bus_id.lower(), remote_type="gpu") for i in range(4)]
    topo = snapshot(RecordedNvml(box), [0, 1], None, {})
    assert [p.link for p in topo.pairs] == ["NV4", "NV4"]
    assert not topo.gpus[0].nvswitch


def test_gpus_are_matched_to_cuda_devices_by_uuid_not_by_order():
    api = RecordedNvml.from_file(HGX)
    # CUDA enumerates in the reverse order and hides GPU 5 (CUDA_VISIBLE_DEVICES)
    visible = [i for i in range(8) if i != 5][::-1]
    cuda = [CudaDevice(index=n, uuid=api.uuid(i).removeprefix("GPU-"), name=api.name(i), sm_count=132, capability="9.0") for n, i in enumerate(visible)]
    topo = snapshot(api, [0, 5, 7], cuda, {})
    assert [g.cuda_index for g in topo.gpus] == [6, None, 0]
    assert [f.gpus for f in topo.flags if f.code == "not_visible_to_cuda"] == [[5]]
    assert topo.gpus[0].capability == "9.0"


def test_uuid_normalisation():
    assert normalize_uuid("GPU-6B1F3C2A-4d5e-4f60-8a1b-2c3d4e5f6000") == normalize_uuid("6b1f3c2a-4d5e-4f60-8a1b-2c3d4e5f6000") == "6b1f3c2a4d5e4f608a1b2c3d4e5f6000"


def test_record_replays_exactly(tmp_path):
    api = RecordedNvml.from_file(HGX)
    assert record(api, api.box.description) == api.box
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"driver_version": "1"}))
    with pytest.raises(SpecError, match="not an NVML recording"):
        RecordedNvml.from_file(broken)


def test_topology_section_from_a_recording(cli, tmp_path):
    copy = tmp_path / "copy.json"
    result = cli("profile", "--device", "cpu", "--only", "topo", "--nvml-file", PCIE, "--nvml-record", copy, "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["schema"] == 1 and data["sections"] == [{"type": "section", "section": "topo", "status": "ran", "reason": None, "notes": [f"replayed from {PCIE}"]}]
    assert {f["code"] for f in data["topology"]["flags"]} >= {"pcie_downtrained", "p2p_disabled", "vm", "throttling"}
    assert data["measurements"] == []
    assert RecordedBox.model_validate_json(copy.read_text()).devices == RecordedBox.model_validate_json(PCIE.read_text()).devices

    text = cli("profile", "--device", "cpu", "--only", "topo", "--nvml-file", HGX, "--gpus", "0-3")
    assert text.exit_code == 0, text.stderr
    assert "NV18 OK/OK" in text.stdout and "GPU3" in text.stdout and "GPU4" not in text.stdout
    assert "\x1b[" not in text.stdout


def test_topology_is_skipped_with_a_reason_on_cpu(cli):
    result = cli("profile", "--device", "cpu", "--only", "topo", "--json")
    assert result.exit_code == 0, result.stderr
    (section,) = result.json()["sections"]
    assert section["status"] == "skipped" and "--nvml-file" in section["reason"]
