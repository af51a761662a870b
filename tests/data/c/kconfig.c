// SPDX-License-Identifier: MIT
/*
 * kconfig.c - ".kconfig" externs that the loader resolves before load into a read-only
 * internal map:
 *   LINUX_KERNEL_VERSION   provided by the loader itself (from uname), not the config
 *   CONFIG_HZ              integer option           (needs /proc/config.gz or /boot/config-*)
 *   CONFIG_BPF_SYSCALL     bool option, y -> 1
 *   CONFIG_DEFAULT_HOSTNAME  string option as a char array (quotes stripped)
 *   CONFIG_BPFKIT_NO_SUCH_OPTION  __weak and absent from every config -> 0
 * The checks hold on any kernel >= 5.0 configured for BPF.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

extern __u32 LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig __weak;
extern int CONFIG_BPFKIT_NO_SUCH_OPTION __kconfig __weak;

#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))

SEC("socket")
int kconfig(struct __sk_buff *skb)
{
	CHECK(LINUX_KERNEL_VERSION >= KERNEL_VERSION(5, 0, 0));
	CHECK(LINUX_KERNEL_VERSION < KERNEL_VERSION(100, 0, 0));
	CHECK(CONFIG_HZ == 100 || CONFIG_HZ == 250 || CONFIG_HZ == 300 || CONFIG_HZ == 1000);
	CHECK(CONFIG_BPF_SYSCALL == 1);
	CHECK(CONFIG_BPFKIT_NO_SUCH_OPTION == 0);
	/* any non-empty hostname default, if the option exists at all */
	CHECK(CONFIG_DEFAULT_HOSTNAME[0] != 0 || CONFIG_DEFAULT_HOSTNAME[1] == 0);
	return 0;
}

char _license[] SEC("license") = "GPL";
