import { pathProblem } from '../../gateway/waf';

describe('pathProblem', () => {
  it('lets ordinary API and git targets through', () => {
    for (const ok of ['/api/v1/repos/a/b', '/api/v1/runs?status=queued&page=2', '/a/b.git/info/refs?service=git-upload-pack', '/a/b.git/git-receive-pack', '/api/v1/repos/a/b/contents/dir%20name/x%C3%BC.txt']) {
      expect(pathProblem(ok)).toBeUndefined();
    }
  });

  it('refuses a fragment anywhere in the target', () => {
    expect(pathProblem('/a/b.git/git-receive-pack#x')).toMatch(/fragment/);
    expect(pathProblem('/api/v1/repos?x=1#y')).toMatch(/fragment/);
  });

  it('refuses raw spaces and bytes past ASCII in the path', () => {
    expect(pathProblem('/api/v1/repos/a b')).toMatch(/non-ASCII|spaces/);
    expect(pathProblem('/api/v1/repos/a\u00a0')).toMatch(/non-ASCII|spaces/);
    expect(pathProblem('/api/v1/repos/\ufeffa')).toMatch(/non-ASCII|spaces/);
  });

  it('still refuses traversal, encoded separators, control characters and empty segments', () => {
    expect(pathProblem('/api/v1/../internal')).toMatch(/dot segments/);
    expect(pathProblem('/api/v1/repos/a%2fb')).toMatch(/encoded/);
    expect(pathProblem('/api/v1/repos/a\u0001')).toMatch(/control/);
    expect(pathProblem('/api//v1')).toMatch(/empty/);
  });
});
