// The few network-namespace primitives the demo needs, over iproute2 and nsenter.
//
// Processes enter a namespace with `nsenter --net=/run/netns/NAME` rather than
// `ip netns exec`: the latter also unshares the mount namespace and remounts /sys, which
// hides the cgroup v2 mount below it, and the agent and `weft run` need their cgroups.
import { execFileSync } from 'node:child_process';
import { WeftError, describeError } from '../lib/errors';

/** Runs `ip ARGS`; failures become WEFT_ERR_UNAVAILABLE with ip's own message. */
export function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string };
    throw new WeftError('WEFT_ERR_UNAVAILABLE', `ip ${args.join(' ')}: ${err.stderr?.trim() || describeError(e)}`);
  }
}

/** argv that runs `argv` inside network namespace `ns`. */
export function inNetns(ns: string, argv: string[]): string[] {
  return ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];
}

export function createNetns(name: string): void {
  ip(['netns', 'add', name]);
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
}

export function listNetns(): string[] {
  return ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

/** Kills every process still inside `ns` (SIGKILL), then deletes it. Missing is fine. */
export function destroyNetns(name: string): void {
  let pids: string[] = [];
  try { pids = ip(['netns', 'pids', name]).split('\n').filter(Boolean); } catch { return; /* already gone */ }
  for (const pid of pids) {
    try { process.kill(Number(pid), 'SIGKILL'); } catch { /* exited meanwhile */ }
  }
  ip(['netns', 'del', name]);
}
