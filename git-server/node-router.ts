import http from 'node:http';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import client from 'prom-client';
import type { Db } from '../core/db';
import { AuthenticationError, DotgitError, InputError, UnavailableError } from '../core/errors';
import { IDENTITY_HEADER, SERVICE_HEADER, verifyIdentity, verifyServiceToken } from '../core/internal-identity';
import type { Logger } from '../core/logger';
import { assertValidName } from '../core/names';
import { accessTo, findRepo } from '../core/repos';
import { assertNodeRegistered, NODE_DOWN_AFTER_SECONDS, placementOf, upToDateReplicaNodes, type StorageNode } from '../core/storage-nodes';

/** Marks a request one node sent on to another: the receiver serves it or refuses it, never sends it on. */
export const FORWARDED_BY_HEADER = 'x-dotgit-forwarded-by';

/** Hop-by-hop headers (RFC 9110 §7.6.1) are not sent on; `host` names the node sent to. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** Marks a read sent to a replica node while the holder is down: the replica serves it from its copy. */
export const REPLICA_READ_HEADER = 'x-dotgit-replica-read';

const replicaReads = new client.Counter({ name: 'dotgit_node_replica_reads_total', help: 'Fetches served by a replica node because the node holding the repository was down', labelNames: ['node'] });

/** Fetches (upload-pack's advertisement and negotiation): the requests a replica node may serve. */
const isFetch = (req: Request) =>
  (req.method === 'GET' && req.path.endsWith('.git/info/refs') && req.query.service === 'git-upload-pack') || (req.method === 'POST' && req.path.endsWith('.git/git-upload-pack'));

/** A forwarded request reached a node that does not hold the repository (RFC 9110 §15.5.20). */
export class MisdirectedRequestError extends DotgitError {
  override readonly name = 'MisdirectedRequestError';
  readonly code = 'misdirected_request';
}

export interface NodeRouterOptions {
  /** The global database: storage nodes (and every repository when there is no `dbOfOwner`). */
  db: Db;
  /** The database of the owner's shard, where its repositories are (ADR 0025). */
  dbOfOwner?: (owner: string) => Promise<Db>;
  log: Logger;
  internalSecret: string;
  /** This node's id and the URL the others reach it at. */
  nodeId: string;
  nodeUrl: string;
}

/** Internal calls that name a repository in their JSON body (the api's), or in the query (`archive`). */
const INTERNAL_REPO_CALL = /^\/internal\/repos(?:\/(?:resolve|pipeline-file|archive|default-branch|refs|log|tree|blob))?$/;
/** Smart HTTP and LFS: everything under `/{owner}/{repo}.git/`. */
const GIT_PATH = /^\/([^/]+)\/([^/]+)\.git\/./;

function downError(repo: string, nodeId: string): UnavailableError {
  return new UnavailableError(`repository ${repo} is on storage node ${nodeId}, which is down; try again later`, 10);
}

/**
 * Routing by any git-server (ADR 0014): a request for a repository placed on another node is
 * streamed to that node, once (marked with `X-Dotgit-Forwarded-By`), and its answer streamed back.
 * Requests for this node's repositories, for repositories from before nodes and for unknown ones
 * go on to the local routes unchanged, so a single node behaves exactly as before.
 */
export function createNodeRouter(o: NodeRouterOptions): express.Router {
  const router = express.Router();
  const repoDb = async (owner: string): Promise<Db> => (o.dbOfOwner ? o.dbOfOwner(owner) : o.db);
  const internalJson = express.json();

  // Which node this is: the api asks its configured git-servers, to place repositories only on them.
  router.get('/internal/node', async (req, res, next) => {
    try {
      await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
        throw new AuthenticationError(e.message);
      });
      res.json({ id: o.nodeId, url: o.nodeUrl });
    } catch (err) {
      next(err);
    }
  });

  const internalCall: RequestHandler = (req, res, next) => {
    if (!INTERNAL_REPO_CALL.test(req.path)) {
      next();
      return;
    }
    const route = async () => {
      if (req.path === '/internal/repos/archive') {
        // Authorised by a job credential, which the node holding the repository checks; without one, the local 401.
        if (!req.header('authorization')) return next();
      } else {
        await verifyServiceToken(o.internalSecret, req.header(SERVICE_HEADER)).catch((e: Error) => {
          throw new AuthenticationError(e.message);
        });
      }
      const source = (req.method === 'GET' ? req.query : req.body) as Record<string, unknown> | undefined;
      if (typeof source?.owner !== 'string' || typeof source?.name !== 'string') return next(); // the route refuses it
      const owner = assertValidName('owner', source.owner);
      const name = assertValidName('name', source.name);
      const repo = `${owner}/${name}`;
      if (req.method === 'POST' && req.path === '/internal/repos') {
        // Creation: the api placed the repository (its row is not committed yet) and names the node.
        if (source.node === undefined) return next(); // an api from before nodes: created here
        if (typeof source.node !== 'string' || source.node.length === 0) throw new InputError('node must be a storage node id');
        if (source.node === o.nodeId) return next();
        if (req.header(FORWARDED_BY_HEADER)) throw new MisdirectedRequestError(`repository ${repo} is to be created on node ${source.node.slice(0, 100)}, not on node ${o.nodeId}`);
        const node = await assertNodeRegistered(o.db, source.node);
        return forward(req, res, repo, node, JSON.stringify(req.body));
      }
      const placed = await placementOf(await repoDb(owner), owner, name, o.db);
      if (!placed?.node || placed.node.id === o.nodeId) return next();
      if (req.header(FORWARDED_BY_HEADER)) throw new MisdirectedRequestError(`repository ${repo} is not on node ${o.nodeId}`);
      return forward(req, res, repo, placed.node, req.method === 'GET' ? undefined : JSON.stringify(req.body));
    };
    // JSON bodies are small: read here (the route's own parser then sees the body already read).
    if (req.method === 'POST') internalJson(req, res, (err?: unknown) => (err ? next(err) : route().catch(next)));
    else route().catch(next);
  };

  const gitCall: RequestHandler = (req, res, next) => {
    const m = GIT_PATH.exec(req.path);
    if (!m) {
      next();
      return;
    }
    (async () => {
      let owner: string;
      let name: string;
      try {
        owner = assertValidName('owner', decodeURIComponent(m[1]));
        name = assertValidName('repo', decodeURIComponent(m[2]));
      } catch {
        return next(); // the local routes refuse a bad name as they always did
      }
      const db = await repoDb(owner);
      const placed = await placementOf(db, owner, name, o.db);
      if (!placed?.node || placed.node.id === o.nodeId) return next();
      // Only a caller who may read the repository learns where it is (or that its node is down):
      // anyone else gets the local answer, the same 401/404 as for a repository that does not exist.
      const identity = await verifyIdentity(o.internalSecret, req.header(IDENTITY_HEADER)).catch(() => undefined);
      if (!identity) return next();
      const repo = await findRepo(db, owner, name);
      if (!repo || (await accessTo(db, identity.principal, repo)) === 'none') return next();
      const reading = isFetch(req);
      if (req.header(FORWARDED_BY_HEADER)) {
        // A fetch another node failed over to this replica: served here if this copy is up to date (checked again).
        if (reading && req.header(REPLICA_READ_HEADER) && (await upToDateReplicaNodes(db, repo.id, o.db)).some((n) => n.id === o.nodeId)) return next();
        throw new MisdirectedRequestError(`repository ${owner}/${name} is not on node ${o.nodeId}`);
      }
      if (reading && (!placed.node.up || refusedLately(placed.node.id))) return readFromReplica(req, res, next, db, repo.id, `${owner}/${name}`, placed.node);
      try {
        return await forward(req, res, `${owner}/${name}`, placed.node);
      } catch (err) {
        // The holder refused a GET (nothing of it was sent): a fetch fails over. A POST's body is spent; 503.
        if (reading && req.method === 'GET' && err instanceof UnavailableError && !res.headersSent) return readFromReplica(req, res, next, db, repo.id, `${owner}/${name}`, placed.node);
        throw err;
      }
    })().catch(next);
  };

  // Nodes that refused a connection lately, so the next requests (a clone's POST after its GET) fail
  // over at once rather than wait for the heartbeat to go stale.
  const refusedAt = new Map<string, number>();
  const refusedLately = (id: string) => Date.now() - (refusedAt.get(id) ?? 0) < NODE_DOWN_AFTER_SECONDS * 1000;

  /**
   * The holder is down: a fetch is served by a replica node whose recorded copy is up to date (this
   * node itself, else the first such node that is up), never by a stale one (503, as without replicas).
   */
  async function readFromReplica(req: Request, res: Response, next: NextFunction, db: Db, repoId: number, repo: string, holder: StorageNode): Promise<void> {
    const replicas = await upToDateReplicaNodes(db, repoId, o.db);
    const replica = replicas.find((n) => n.id === o.nodeId) ?? replicas.find((n) => n.up);
    if (!replica) throw downError(repo, holder.id);
    replicaReads.inc({ node: replica.id });
    (req.log ?? o.log).warn({ repo, holder: holder.id, replica: replica.id }, 'holder down; serving the fetch from an up-to-date replica node');
    if (replica.id === o.nodeId) return next();
    return forward(req, res, repo, replica, undefined, true);
  }

  /** Streams the request to `node` and its answer back; a node that is down or refuses the connection: 503. */
  async function forward(req: Request, res: Response, repo: string, node: StorageNode, body?: string, replicaRead = false): Promise<void> {
    if (!node.up) throw downError(repo, node.id);
    const target = new URL(node.url);
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    headers[FORWARDED_BY_HEADER] = o.nodeId;
    if (replicaRead) headers[REPLICA_READ_HEADER] = '1';
    else delete headers[REPLICA_READ_HEADER];
    if (body !== undefined) {
      headers['content-length'] = String(Buffer.byteLength(body));
      delete headers['content-encoding']; // the body was decoded when it was read
    }
    const base = target.pathname.replace(/\/+$/, '');
    const bodiless = body === undefined && (req.method === 'GET' || req.method === 'HEAD') && !req.headers['content-length'] && !req.headers['transfer-encoding'];
    const attempt = (retried: boolean) =>
      new Promise<void>((resolve, reject) => {
        const out = http.request({ agent, hostname: target.hostname, port: target.port, method: req.method, path: base + req.originalUrl, headers });
        // The client went away: the other node's socket is freed at once.
        res.on('close', () => {
          if (!res.writableFinished) out.destroy();
        });
        out.on('error', (err) => {
          if (res.headersSent) {
            res.destroy();
            resolve();
          } else if (bodiless && out.reusedSocket && !retried) {
            // A kept-alive connection the other node closed meanwhile: nothing was sent, try a fresh one.
            attempt(true).then(resolve, reject);
          } else {
            (req.log ?? o.log).warn({ err, repo, node: node.id }, 'storage node did not answer a forwarded request');
            refusedAt.set(node.id, Date.now());
            reject(downError(repo, node.id));
          }
        });
        out.on('response', (up) => {
          refusedAt.delete(node.id);
          const resHeaders: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(up.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) resHeaders[k] = v;
          res.writeHead(up.statusCode ?? 502, resHeaders);
          up.pipe(res);
          up.on('error', () => res.destroy());
          up.on('end', resolve);
        });
        if (body !== undefined) out.end(body);
        else if (bodiless) out.end();
        else req.pipe(out);
      });
    await attempt(false);
  }

  router.use(internalCall);
  router.use(gitCall);
  return router;
}
