/* bpfkit: <bpf/bpf_helpers.h> for sources written against libbpf's headers; everything is in bpfkit_helpers.h. */
#include "../bpfkit_helpers.h"
