/* bpfkit: <bpf/bpf_core_read.h> for sources written against libbpf's headers; everything is in bpfkit_helpers.h. */
#include "../bpfkit_helpers.h"
