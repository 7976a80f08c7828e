import { chooseNode } from '../../core/storage-nodes';

// Least-used placement (ADR 0014): the up node holding the fewest repositories, ties by id.

test('the node with the fewest repositories is chosen', () => {
  expect(chooseNode([{ id: 'a', repos: 5 }, { id: 'b', repos: 2 }, { id: 'c', repos: 9 }])).toBe('b');
});

test('ties go to the lowest id, whatever the order given', () => {
  expect(chooseNode([{ id: 'n2', repos: 3 }, { id: 'n1', repos: 3 }, { id: 'n3', repos: 3 }])).toBe('n1');
  expect(chooseNode([{ id: 'n1', repos: 3 }, { id: 'n2', repos: 3 }])).toBe('n1');
});

test('no node: nothing is chosen', () => {
  expect(chooseNode([])).toBeUndefined();
});
