import { protectionViolation, type BranchProtection, type ProposedUpdate } from '../../core/protections';
import { badRefName } from '../../git-server/hook-support';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const Z = '0'.repeat(40);
const upd = (over: Partial<ProposedUpdate>): ProposedUpdate => ({ ref: 'refs/heads/main', oldSha: A, newSha: B, nonFastForward: false, ...over });
const rules: BranchProtection[] = [
  { pattern: 'main', allowForcePush: false, allowDeletion: false },
  { pattern: 'release/*', allowForcePush: true, allowDeletion: false, pushers: ['alice'] },
];

test('fast-forward pushes to a protected branch pass; rewrites and deletions do not', () => {
  expect(protectionViolation(upd({}), rules, 'bob')).toBeUndefined();
  expect(protectionViolation(upd({ nonFastForward: true }), rules, 'bob')).toMatch(/force-push/);
  expect(protectionViolation(upd({ newSha: Z }), rules, 'bob')).toMatch(/cannot be deleted/);
  // Creating the branch is not a force push.
  expect(protectionViolation(upd({ oldSha: Z, nonFastForward: true }), rules, 'bob')).toBeUndefined();
});

test('globs, pushers, other refs', () => {
  expect(protectionViolation(upd({ ref: 'refs/heads/release/1.0', nonFastForward: true }), rules, 'alice')).toBeUndefined();
  expect(protectionViolation(upd({ ref: 'refs/heads/release/1.0' }), rules, 'bob')).toMatch(/bob may not push/);
  expect(protectionViolation(upd({ ref: 'refs/heads/dev', newSha: Z }), rules, 'bob')).toBeUndefined();
  expect(protectionViolation(upd({ ref: 'refs/tags/main', newSha: Z }), rules, 'bob')).toBeUndefined();
});

test('ref names with a component beginning with "-" are refused', () => {
  expect(badRefName('refs/heads/-rf')).toBeDefined();
  expect(badRefName('refs/heads/a/--x')).toBeDefined();
  expect(badRefName('refs/heads/a-b')).toBeUndefined();
});
