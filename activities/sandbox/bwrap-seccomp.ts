/**
 * A seccomp filter for the bubblewrap fallback, as the classic-BPF program `bwrap --seccomp FD`
 * expects (an array of struct sock_filter). Bubblewrap shares the host kernel, so this narrows the
 * kernel surface a step can reach: the usual container deny list (as in Docker's and Flatpak's
 * profiles) plus no nested user namespaces, the gateway to most unprivileged kernel exploits.
 * Denied calls fail with EPERM instead of killing the step, so well-behaved tools degrade.
 * x86_64 only: syscall numbers are per architecture, and other architectures get no filter.
 */

// BPF opcodes (linux/bpf_common.h).
const BPF_LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JSET_K = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K = 0x06; // BPF_RET | BPF_K

const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;
const TIOCSTI = 0x5412;

// Offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6] (low word first on x86_64).
const OFF_NR = 0;
const OFF_ARCH = 4;
const argLow = (i: number) => 16 + 8 * i;

/** x86_64 syscalls a CI step has no business making. */
export const DENIED_SYSCALLS_X86_64: Record<string, number> = {
  syslog: 103, uselib: 134, ustat: 136, sysfs: 139, pivot_root: 155, _sysctl: 156, adjtimex: 159,
  chroot: 161, acct: 163, settimeofday: 164, mount: 165, umount2: 166, swapon: 167, swapoff: 168,
  reboot: 169, sethostname: 170, setdomainname: 171, iopl: 172, ioperm: 173, init_module: 175,
  delete_module: 176, quotactl: 179, nfsservctl: 180, lookup_dcookie: 212, clock_settime: 227,
  kexec_load: 246, add_key: 248, request_key: 249, keyctl: 250, perf_event_open: 298,
  name_to_handle_at: 303, open_by_handle_at: 304, clock_adjtime: 305, setns: 308,
  finit_module: 313, kexec_file_load: 320, bpf: 321, userfaultfd: 323, io_uring_setup: 425,
  io_uring_enter: 426, io_uring_register: 427, open_tree: 428, move_mount: 429, fsopen: 430,
  fsconfig: 431, fsmount: 432, fspick: 433, mount_setattr: 442,
};
const NR_IOCTL = 16;
const NR_CLONE = 56;
const NR_UNSHARE = 272;
const NR_CLONE3 = 435;

type Insn = { code: number; k: number; jt?: string; jf?: string } | { label: string };

/** Tiny assembler: jump targets are labels, resolved to the forward offsets cBPF wants. */
function assemble(program: Insn[]): Buffer {
  const labels = new Map<string, number>();
  const insns: { code: number; k: number; jt?: string; jf?: string }[] = [];
  for (const insn of program) {
    if ('label' in insn) labels.set(insn.label, insns.length);
    else insns.push(insn);
  }
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    const offset = (label?: string) => {
      if (label === undefined) return 0;
      const target = labels.get(label);
      if (target === undefined || target <= i || target - i - 1 > 255) throw new Error(`bad BPF jump to ${label}`);
      return target - i - 1;
    };
    buf.writeUInt16LE(insn.code, i * 8);
    buf.writeUInt8(offset(insn.jt), i * 8 + 2);
    buf.writeUInt8(offset(insn.jf), i * 8 + 3);
    buf.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return buf;
}

/** The compiled filter, or undefined on architectures it does not cover. */
export function bwrapSeccompProgram(arch: string = process.arch): Buffer | undefined {
  if (arch !== 'x64') return undefined;
  const ret = (k: number): Insn => ({ code: BPF_RET_K, k });
  return assemble([
    { code: BPF_LD_W_ABS, k: OFF_ARCH },
    { code: BPF_JEQ_K, k: AUDIT_ARCH_X86_64, jf: 'kill' },
    { code: BPF_LD_W_ABS, k: OFF_NR },
    { code: BPF_JGE_K, k: X32_SYSCALL_BIT, jt: 'eperm' }, // x32 ABI: a second syscall table
    ...Object.values(DENIED_SYSCALLS_X86_64).map((nr): Insn => ({ code: BPF_JEQ_K, k: nr, jt: 'eperm' })),
    { code: BPF_JEQ_K, k: NR_CLONE, jt: 'flags-arg0' },
    { code: BPF_JEQ_K, k: NR_UNSHARE, jt: 'flags-arg0' },
    // clone3 passes flags in memory that BPF cannot read; ENOSYS makes libc fall back to clone.
    { code: BPF_JEQ_K, k: NR_CLONE3, jt: 'enosys' },
    { code: BPF_JEQ_K, k: NR_IOCTL, jt: 'ioctl' },
    ret(SECCOMP_RET_ALLOW),
    { label: 'flags-arg0' },
    { code: BPF_LD_W_ABS, k: argLow(0) },
    { code: BPF_JSET_K, k: CLONE_NEWUSER, jt: 'eperm' },
    ret(SECCOMP_RET_ALLOW),
    { label: 'ioctl' },
    // TIOCSTI pushes input into the controlling terminal; the kernel compares only the low 32 bits.
    { code: BPF_LD_W_ABS, k: argLow(1) },
    { code: BPF_JEQ_K, k: TIOCSTI, jt: 'eperm' },
    ret(SECCOMP_RET_ALLOW),
    { label: 'eperm' },
    ret(SECCOMP_RET_ERRNO | EPERM),
    { label: 'enosys' },
    ret(SECCOMP_RET_ERRNO | ENOSYS),
    { label: 'kill' },
    ret(SECCOMP_RET_KILL_PROCESS),
  ]);
}
