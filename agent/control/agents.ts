// What the control API knows about each agent that ever synced since it started: the
// version it ACKed (its "current"), the version last pushed, and its last NACK. A NACKed
// version is recorded as rejected and never becomes acked for that agent.
import type { AuthMethod } from './auth';

export interface AgentRecord {
  node: string;
  streams: number;
  ackedVersion: string;
  sentVersion: string;
  lastNackVersion: string;
  lastNackReason: string;
  lastSeenMs: number;
  /** How its latest stream authenticated: bootstrap token or node certificate. */
  auth: AuthMethod | '';
}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();

  get(node: string): AgentRecord | undefined {
    return this.agents.get(node);
  }

  list(): AgentRecord[] {
    return [...this.agents.values()].sort((a, b) => (a.node < b.node ? -1 : 1));
  }

  connected(): number {
    let n = 0;
    for (const a of this.agents.values()) if (a.streams > 0) n++;
    return n;
  }

  /** A stream for `node` opened; `has` is the version it says it already serves. */
  open(node: string, has: string, auth: AuthMethod): AgentRecord {
    let a = this.agents.get(node);
    if (!a) {
      a = { node, streams: 0, ackedVersion: '', sentVersion: '', lastNackVersion: '', lastNackReason: '', lastSeenMs: 0, auth: '' };
      this.agents.set(node, a);
    }
    a.streams++;
    a.auth = auth;
    a.ackedVersion = has;
    a.lastSeenMs = Date.now();
    return a;
  }

  close(a: AgentRecord): void {
    a.streams = Math.max(0, a.streams - 1);
    a.lastSeenMs = Date.now();
  }

  sent(a: AgentRecord, version: string): void {
    a.sentVersion = version;
  }

  ack(a: AgentRecord, version: string): void {
    a.ackedVersion = version;
    a.lastSeenMs = Date.now();
  }

  nack(a: AgentRecord, version: string, reason: string): void {
    a.lastNackVersion = version;
    a.lastNackReason = reason;
    a.lastSeenMs = Date.now();
  }
}
