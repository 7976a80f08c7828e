import { bwrapSeccompProgram, DENIED_SYSCALLS_X86_64 } from '../../activities/sandbox/bwrap-seccomp';

const RET = 0x06;

test('compiles to whole sock_filter instructions, checks the arch first, ends in returns', () => {
  const prog = bwrapSeccompProgram('x64')!;
  expect(prog.length % 8).toBe(0);
  const insns = Array.from({ length: prog.length / 8 }, (_, i) => ({
    code: prog.readUInt16LE(i * 8),
    jt: prog.readUInt8(i * 8 + 2),
    jf: prog.readUInt8(i * 8 + 3),
    k: prog.readUInt32LE(i * 8 + 4),
  }));
  expect(insns[0]).toEqual({ code: 0x20, jt: 0, jf: 0, k: 4 }); // load arch
  expect(insns[1]!.k).toBe(0xc000003e); // AUDIT_ARCH_X86_64
  expect(insns.at(-1)).toEqual({ code: RET, jt: 0, jf: 0, k: 0x80000000 }); // kill on foreign arch
  // Every jump lands inside the program (the kernel rejects it otherwise).
  insns.forEach((insn, i) => {
    if ((insn.code & 0x07) !== 0x05) return; // only BPF_JMP instructions jump
    expect(i + 1 + insn.jt).toBeLessThan(insns.length);
    expect(i + 1 + insn.jf).toBeLessThan(insns.length);
  });
  // Each denied syscall number is compared once.
  for (const nr of Object.values(DENIED_SYSCALLS_X86_64)) {
    expect(insns.filter((x) => x.code === 0x15 && x.k === nr).length).toBeGreaterThanOrEqual(1);
  }
});

test('no filter for architectures whose syscall table it does not know', () => {
  expect(bwrapSeccompProgram('arm64')).toBeUndefined();
});
