import { promises as fs } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { errorBody } from '../core/http';
import { PACK_FILE_PATH, readVolumeId } from '../core/pack-handoff';
import { sendJson } from './edge-request';

/** Read size of a handed-off file: large reads mean few event-loop turns and write calls per pack. */
const READ_BYTES = 1024 * 1024;
/** How often the folder's volume id is read again (the git-server may start after us, or a new folder replace the old). */
const RECHECK_MS = 10_000;

/**
 * The git-server's pack cache, read from the gateway (ADR 0040): a fetch answer the git-server
 * names instead of sending (PACK_FILE_HEADER) is streamed from the shared folder by this process,
 * so the bytes cross one process instead of two. The git-server has authorised the request and
 * chosen the file; this only opens names of the cache's own shape inside `dir`.
 */
export class PackFiles {
  private id: string | undefined;
  private checkedAt = 0;
  private checking = false;

  constructor(private readonly dir: string) {
    this.recheck();
  }

  /** The folder's volume id for PACK_VOLUME_HEADER, or undefined while none is known (then nothing is handed off). */
  volumeId(): string | undefined {
    if (Date.now() - this.checkedAt > RECHECK_MS) this.recheck();
    return this.id;
  }

  private recheck(): void {
    if (this.checking) return;
    this.checking = true;
    this.checkedAt = Date.now();
    void readVolumeId(this.dir)
      .then((id) => (this.id = id))
      .finally(() => (this.checking = false));
  }

  /**
   * Answers the client with the named file and the upstream's status and headers (`headers`,
   * already without hop-by-hop and internal ones). A name of another shape, or a file that is gone,
   * is a 502: the client's git reports it and a new fetch is answered afresh.
   */
  async serve(name: string, status: number, headers: http.OutgoingHttpHeaders, res: http.ServerResponse, requestId: string | undefined): Promise<void> {
    const handle = PACK_FILE_PATH.test(name) ? await fs.open(path.join(this.dir, name), 'r').catch(() => undefined) : undefined;
    if (!handle) {
      sendJson(res, 502, errorBody('bad_gateway', 'the git-server named a cached answer the gateway cannot read; fetch again', requestId));
      return;
    }
    let size: number;
    try {
      size = (await handle.stat()).size;
    } catch {
      await handle.close();
      sendJson(res, 502, errorBody('bad_gateway', 'the git-server named a cached answer the gateway cannot read; fetch again', requestId));
      return;
    }
    delete headers['content-length'];
    res.writeHead(status, { ...headers, 'content-length': String(size) });
    try {
      await sendFile(handle, size, res);
    } catch {
      res.destroy();
    } finally {
      await handle.close();
    }
  }
}

/**
 * Writes `size` bytes of the file to the client through two buffers used in turn: a buffer is read
 * into again only once the socket has taken its previous contents (the write's callback), so the
 * client's pace sets the reads and no memory is allocated per chunk (a fresh buffer per read, as
 * a file stream does, cost a measurable share of the gateway's CPU in a clone storm).
 */
async function sendFile(handle: fs.FileHandle, size: number, res: http.ServerResponse): Promise<void> {
  const buffers = [Buffer.allocUnsafeSlow(READ_BYTES), Buffer.allocUnsafeSlow(READ_BYTES)];
  const taken: Array<Promise<void> | undefined> = [undefined, undefined];
  // A write whose callback never came (the socket went first) must not hold the loop.
  const closed = new Promise<void>((resolve) => res.once('close', resolve));
  let position = 0;
  for (let turn = 0; position < size; turn ^= 1) {
    await Promise.race([taken[turn], closed]);
    if (res.destroyed) return; // the client left: its pending writes were cancelled
    const { bytesRead } = await handle.read(buffers[turn]!, 0, Math.min(READ_BYTES, size - position), position);
    if (bytesRead === 0) throw new Error('pack cache file shrank');
    position += bytesRead;
    taken[turn] = new Promise<void>((resolve) => {
      res.write(buffers[turn]!.subarray(0, bytesRead), () => resolve());
    });
  }
  await Promise.race([Promise.all(taken), closed]);
  if (!res.destroyed) res.end();
}
