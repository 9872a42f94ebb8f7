// What an operator needs to see after editing policies: did the control API take the
// change (accepted, or rejected with each `file:line:col: message`), which snapshot it
// serves, and which snapshot every node serves (acked) or refused (NACK). One shape for
// every place that shows it: the control API's admin port (GET /v1/reload, which the
// demo's live view reads), the agent's admin port (GET /v1/mesh, from the control API's
// Status RPC, which `weft status` prints), and the lines both render.
import type { StatusResponse } from './generated/weft/control/v1/StatusResponse';

export interface NodeSnapshot {
  node: string;
  connected: boolean;
  /** The version the node ACKed: what it serves. */
  serving: string;
  /** Set while the node's latest answer was a NACK of a newer version. */
  rejected?: { version: string; reason: string };
}

export interface ReloadStatus {
  source: string;
  /** The snapshot the control API serves ('' before the first good compile). */
  current: string;
  currentSinceMs: number;
  /** The last reload of the policies (null before the first). */
  lastReload: null | {
    accepted: boolean;
    atMs: number;
    /** Rejected only: the source revision (git) and one `file:line:col: message` each. */
    revision?: string;
    diagnostics?: string[];
  };
  nodes: NodeSnapshot[];
}

const num = (v: unknown): number => Number(v ?? 0) || 0;

/** From the Status RPC's answer (the server's own object, or a client's decoded one). */
export function reloadStatus(s: StatusResponse): ReloadStatus {
  const rej = s.lastRejection ?? null;
  const at = num(s.lastReloadMs);
  let lastReload: ReloadStatus['lastReload'] = null;
  if (at > 0 && s.lastReloadAccepted) lastReload = { accepted: true, atMs: at };
  else if (rej && (at === 0 || num(rej.atMs) >= at)) {
    lastReload = { accepted: false, atMs: num(rej.atMs), diagnostics: [...(rej.diagnostics ?? [])], ...(rej.revision ? { revision: rej.revision } : {}) };
  }
  return {
    source: s.source ?? '',
    current: s.currentVersion ?? '',
    currentSinceMs: num(s.currentSinceMs),
    lastReload,
    nodes: (s.agents ?? []).map((a) => {
      const n: NodeSnapshot = { node: a.node ?? '', connected: a.connected === true, serving: a.ackedVersion ?? '' };
      // A NACK is current while the node was last sent that version and did not ACK it.
      if (a.lastNackVersion && a.lastNackVersion === a.sentVersion && a.ackedVersion !== a.sentVersion) n.rejected = { version: a.lastNackVersion, reason: a.lastNackReason ?? '' };
      return n;
    }).sort((x, y) => x.node.localeCompare(y.node)),
  };
}

const ago = (ms: number, now: number) => `${Math.max(0, Math.round((now - ms) / 1000))}s ago`;

/** Human lines: the reload verdict (with every diagnostic) and the nodes' snapshots. */
export function reloadLines(r: ReloadStatus, now = Date.now()): string[] {
  const out: string[] = [];
  const l = r.lastReload;
  if (!l) out.push(`policy reload   none yet (serving ${r.current || 'nothing'})`);
  else if (l.accepted) out.push(`policy reload   accepted ${ago(l.atMs, now)}, serving ${r.current}`);
  else {
    out.push(`policy reload   REJECTED ${ago(l.atMs, now)}${l.revision ? ` (revision ${l.revision})` : ''}: ${l.diagnostics?.length ?? 0} problem(s); still serving ${r.current || 'nothing'}`);
    for (const d of l.diagnostics ?? []) out.push(`  ${d}`);
  }
  out.push(`node snapshots  ${r.nodes.length ? r.nodes.map((n) => `${n.node} ${n.serving || 'none'}${n.connected ? '' : ' (disconnected)'}${n.rejected ? ` (NACKed ${n.rejected.version}: ${n.rejected.reason})` : ''}`).join(', ') : '(no agent has synced)'}`);
  return out;
}
