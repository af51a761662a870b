"""tools/gen_helper_header.py: prototypes from the UAPI documentation, and the shipped header is current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
UAPI = Path("/usr/include/linux/bpf.h")


def _tool():  # type: ignore[no-untyped-def]
    path = ROOT / "tools" / "gen_helper_header.py"
    spec = importlib.util.spec_from_file_location("gen_helper_header", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_helper_header"] = mod
    spec.loader.exec_module(mod)
    return mod


DOC = """\
/* Start of BPF helper function descriptions:
 *
 * void *bpf_map_lookup_elem(struct bpf_map *map, const void *key)
 * 	Description
 * 		Perform a lookup in *map* for an entry associated to *key*.
 *
 * long bpf_skb_store_bytes(struct sk_buff *skb, u32 offset, const void *from, u32 len, u64 flags)
 * 	Description
 * 		Store bytes.
 */
 * long bpf_not_a_helper(void)
"""


def test_parse_and_render() -> None:
    tool = _tool()
    protos = tool.parse_prototypes(DOC)
    assert protos == {
        "map_lookup_elem": ("void *", "struct bpf_map *map, const void *key"),
        "skb_store_bytes": ("long", "struct sk_buff *skb, u32 offset, const void *from, u32 len, u64 flags")}
    text = tool.render(protos, {"unspec": 0, "map_lookup_elem": 1, "skb_store_bytes": 9, "newer": 300},
                       "/* macros */")
    assert "static void *(* const bpf_map_lookup_elem)(void *map, const void *key) = (void *) 1;" in text
    assert ("static long (* const bpf_skb_store_bytes)(struct __sk_buff *skb, u32 offset, const void *from, "
            "u32 len, u64 flags) = (void *) 9;") in text
    assert "static long (* const bpf_newer)() = (void *) 300;" in text
    assert "struct __sk_buff;" in text and "bpf_unspec" not in text and "/* macros */" in text


@pytest.mark.skipif(not UAPI.exists(), reason="needs the kernel UAPI header /usr/include/linux/bpf.h")
def test_shipped_header_is_up_to_date() -> None:
    tool = _tool()
    shipped = tool.DEFAULT_OUT.read_text()
    if f"UAPI header sha256: {tool.uapi_sha(UAPI.read_bytes())}" not in shipped:
        pytest.skip(f"{tool.DEFAULT_OUT.name} was generated from another version of {UAPI}")
    assert tool.main(["--uapi", str(UAPI), "--check"]) == 0
