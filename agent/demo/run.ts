// `weft demo` from start to finish: check prerequisites → plan from the policies →
// namespaces → control API → one agent per node → the sample application (each process
// through `weft run`) → the traffic driver → the live view; then, on Ctrl-C/SIGTERM or
// after --duration, stop everything in reverse order and remove all of it. One teardown
// path serves every way out (signal during setup, failed step, normal end).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN_FILE } from '../admin/server';
import { WeftError, describeError } from '../lib/errors';
import { inNetns } from './netns';
import { ADMIN_PORT, CONTROL_PORT, FABRIC_HOST_IP, planDemo, type AppSpec, type DemoPlan, type NodePlan } from './plan';
import { createTopology, demoPrefix, destroyTopology, type Topology } from './topology';
import { checkPrerequisites } from './preflight';
import { TEMP_PREFIX } from './leftovers';
import { demoModule, startChild, stopAll, weftSelf, type Child } from './processes';
import type { AppConfig } from './app/config';
import type { ViewConfig } from './view-main';

export interface DemoOptions {
  policies: string;
  nodes: number;
  /** Seconds of traffic after everything is up; undefined: until a signal. */
  duration?: number;
  tty: boolean;
  rps: number;
  /** Keep the processes' logs here (default: in the temp dir, removed at the end). */
  logDir?: string;
  say(line: string): void;
}

const READY_TIMEOUT_MS = 60_000;
/** The control API's admin port (metrics, its last policy reload for the view). */
const CONTROL_ADMIN_PORT = 15011;

class Stopped extends Error {}

export async function runDemo(o: DemoOptions): Promise<number> {
  checkPrerequisites();
  const plan = planDemo(o.policies, o.nodes);
  for (const s of plan.skipped) o.say(`not started: ${s}`);

  let stopRequested: (why: string) => void = () => {};
  const stopped = new Promise<string>((r) => { stopRequested = r; });
  let stopReason: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => () => { if (!stopReason) { stopReason = sig; o.say(`${sig}: stopping and removing everything…`); stopRequested(sig); } };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => { const h = onSignal(s); process.on(s, h); return [s, h] as const; });
  /** Races a setup step against a stop request. */
  const step = <T>(p: Promise<T>): Promise<T> => Promise.race([p, stopped.then(() => { throw new Stopped(); })]);

  const tmp = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
  const logs = o.logDir ?? join(tmp, 'logs');
  mkdirSync(logs, { recursive: true });
  // Per-node bootstrap tokens, as `weft token create` makes them: the control API's file
  // has one 'NODE TOKEN' line each, every agent reads only its own.
  const tokenFile = join(tmp, 'token');
  const nodeTokens = new Map(plan.nodes.map((n) => [n.name, randomBytes(24).toString('base64url')]));
  writeFileSync(tokenFile, [...nodeTokens].map(([n, tok]) => `${n} ${tok}\n`).join(''), { mode: 0o600 });
  for (const [n, tok] of nodeTokens) writeFileSync(join(tmp, `token-${n}`), `${tok}\n`, { mode: 0o600 });
  const env = { ...process.env, WEFT_LOG_LEVEL: process.env.WEFT_LOG_LEVEL ?? 'info' };

  let topo: Topology | null = null;
  const control: Child[] = [], agents: Child[] = [], apps: Child[] = [], view: Child[] = [];
  let code = 0;
  try {
    o.say(`creating ${plan.nodes.length} nodes (network namespaces ${demoPrefix()}*)…`);
    topo = createTopology(plan, demoPrefix());
    const t = topo;

    // TLS to the control API: the agents trust the CA bundle it writes before listening.
    const caBundle = join(tmp, 'control-ca.pem');
    o.say(`starting control API on ${FABRIC_HOST_IP}:${CONTROL_PORT} (policies: ${o.policies})…`);
    control.push(startChild('control', t.fabric, weftSelf('control', '--policies', o.policies, '--listen', `${FABRIC_HOST_IP}:${CONTROL_PORT}`,
      '--admin', `${FABRIC_HOST_IP}:${CONTROL_ADMIN_PORT}`, '--state-dir', join(tmp, 'control'), '--token-file', tokenFile, '--poll-interval', '1s',
      '--ca-bundle-out', caBundle), logs, { env }));
    o.say(`control API: ${(await step(control[0]!.waitFor(/listening on/, READY_TIMEOUT_MS))).replace(/^weft control: /, '')}`);

    for (const node of plan.nodes) {
      agents.push(startChild(`agent-${node.name}`, t.nodes.get(node.name)!, weftSelf('agent', '--control', `${FABRIC_HOST_IP}:${CONTROL_PORT}`,
        '--node', node.name, '--token-file', join(tmp, `token-${node.name}`), '--control-ca', caBundle, '--state-dir', join(tmp, node.name), '--admin', `${node.fabricIp}:${ADMIN_PORT}`,
        '--inbound', '0.0.0.0:15008', '--node-address', node.fabricIp), logs, { env }));
    }
    o.say(`starting ${plan.nodes.length} agents…`);
    await step(Promise.all(plan.nodes.map(async (node, i) => {
      const version = await waitAgentReady(t, node, agents[i]!, join(tmp, node.name, ADMIN_TOKEN_FILE));
      o.say(`agent ${node.name} ready (snapshot ${version})`);
    })));

    const appSpecs = plan.nodes.flatMap((n) => n.apps.filter((a) => a.role !== 'loadgen').map((a) => [n, a] as const));
    o.say(`starting the sample application (${appSpecs.length} workloads with weft run)…`);
    await step(Promise.all(appSpecs.map(async ([node, app]) => {
      const c = startApp(t, plan, node, app, logs, env, join(tmp, node.name), {});
      apps.push(c);
      await c.waitFor(/listening/, READY_TIMEOUT_MS);
      o.say(`  ${app.namespace}/${app.name} (${app.role}${app.labels.version ? ` ${app.labels.version}` : ''}) on ${node.name} at ${app.address}:${app.port}`);
    })));

    const statsFile = join(tmp, 'loadgen.json');
    const lgNode = plan.nodes.find((n) => n.apps.some((a) => a.role === 'loadgen'))!;
    const lg = startApp(t, plan, lgNode, lgNode.apps.find((a) => a.role === 'loadgen')!, logs, env, join(tmp, lgNode.name), { statsFile, rps: o.rps });
    apps.push(lg);
    await step(lg.waitFor(/listening/, READY_TIMEOUT_MS));
    o.say(`traffic: loadgen on ${lgNode.name} → frontend ${plan.services.frontend} at ${o.rps} req/s, and → payments ${plan.services.payments} (must be refused)`);

    const viewCfg: ViewConfig = { agents: plan.nodes.map((n) => ({ node: n.name, admin: `${n.fabricIp}:${ADMIN_PORT}` })), loadgenStats: statsFile, tty: o.tty, controlAdmin: `${FABRIC_HOST_IP}:${CONTROL_ADMIN_PORT}` };
    view.push(startChild('view', t.fabric, demoModule('view-main', JSON.stringify(viewCfg)), logs, { env, stdout: 'inherit' }));
    o.say(`live view every second${o.duration ? ` for ${o.duration}s` : ''}; edit ${o.policies} to change the mesh; Ctrl-C stops and removes everything`);

    // Running: report any process that dies on its own, until the end.
    for (const c of [...control, ...agents, ...apps]) {
      void c.exited.then((exit) => { if (!stopReason) o.say(`${c.name} exited unexpectedly (${exit}); last lines of ${c.logFile}:\n${c.tail(8)}`); });
    }
    const timer = o.duration ? setTimeout(() => { if (!stopReason) { stopReason = 'duration'; stopRequested('duration'); } }, o.duration * 1000) : null;
    await stopped;
    if (timer) clearTimeout(timer);
  } catch (e) {
    if (!(e instanceof Stopped)) {
      code = 1;
      o.say(`demo failed: ${describeError(e)}`);
    }
  } finally {
    stopReason ??= 'teardown';
    for (const [s, h] of handlers) process.off(s, h);
    o.say('stopping: view, workloads, agents, control API…');
    await stopAll(view, 1000);
    await stopAll(apps, 3000);     // `weft run` deregisters through its agent: agents still up
    await stopAll(agents, 3000);
    await stopAll(control, 3000);
    const problems = removeAll(topo, plan);
    rmSync(tmp, { recursive: true, force: true });
    if (problems.length) {
      code = 1;
      o.say(`cleanup problems (run 'weft demo --cleanup'):\n  ${problems.join('\n  ')}`);
    } else {
      o.say(`removed namespaces, veths, bridge, BPF pins and cgroups of ${plan.nodes.map((n) => n.name).join(', ')}, and ${tmp}`);
    }
  }
  return code;
}

/** `stateDir`: the node agent's --state-dir, which holds the admin token `weft run`
 *  needs (the admin port is on the node's fabric address, not loopback). */
function startApp(t: Topology, plan: DemoPlan, node: NodePlan, app: AppSpec, logs: string, env: NodeJS.ProcessEnv, stateDir: string, extra: Partial<AppConfig>): Child {
  const cfg: AppConfig = { role: app.role, name: app.name, address: app.address, port: app.port, version: app.labels.version ?? null, services: plan.services, ...extra };
  const labels = Object.entries(app.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  return startChild(`${app.namespace}.${app.name}`, t.nodes.get(node.name)!, weftSelf('run', '--admin', `${node.fabricIp}:${ADMIN_PORT}`, '--admin-token-file', join(stateDir, ADMIN_TOKEN_FILE),
    '--workload', app.name, '--namespace', app.namespace, '--service-account', app.serviceAccount, ...labels,
    '--', ...demoModule('app/main', JSON.stringify(cfg))), logs, { env });
}

interface AgentStatus { control: { version: string }; listeners: { inbound: string | null } }

/** Waits until the agent serves a snapshot and its mTLS listener is up; returns the
 *  snapshot version. The admin port is only reachable inside the demo's network, so the
 *  probe runs there (a one-line fetch in the agent's own namespace). */
async function waitAgentReady(t: Topology, node: NodePlan, agent: Child, tokenFile: string): Promise<string> {
  await agent.waitFor(/"msg":"agent started"/, READY_TIMEOUT_MS);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  for (;;) {
    if (agent.proc.exitCode !== null) throw new WeftError('WEFT_ERR_UNAVAILABLE', `agent ${node.name} exited (${agent.proc.exitCode}); last lines of ${agent.logFile}:\n${agent.tail()}`);
    try {
      // The admin port is on the fabric address, not loopback: reads need the token.
      const s = JSON.parse(await fetchIn(t.nodes.get(node.name)!, `http://${node.fabricIp}:${ADMIN_PORT}/v1/status`, readFileSync(tokenFile, 'utf8').trim())) as AgentStatus;
      if (s.control.version && s.listeners.inbound) return s.control.version;
      last = s.control.version ? 'mTLS listener not up yet (no node certificate)' : 'no snapshot yet';
    } catch (e) { last = describeError(e); }
    if (Date.now() > deadline) throw new WeftError('WEFT_ERR_TIMEOUT', `agent ${node.name} not ready after ${READY_TIMEOUT_MS / 1000}s (${last}); last lines of ${agent.logFile}:\n${agent.tail()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const FETCH_SCRIPT = 'fetch(process.argv[1],{signal:AbortSignal.timeout(2000),headers:{authorization:"Bearer "+process.argv[2]}}).then(async(r)=>{const t=await r.text();if(!r.ok)throw new Error("HTTP "+r.status+": "+t);process.stdout.write(t)}).catch((e)=>{process.stderr.write(String(e.message));process.exit(1)})';

function fetchIn(ns: string, url: string, token: string): Promise<string> {
  const [cmd, ...args] = inNetns(ns, [process.execPath, '-e', FETCH_SCRIPT, url, token]);
  return new Promise((resolve, reject) => {
    execFile(cmd!, args, { encoding: 'utf8', timeout: 5000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)));
  });
}

/** Namespaces (with anything still inside), then every node's pins and cgroups. */
function removeAll(topo: Topology | null, plan: DemoPlan): string[] {
  const problems = topo ? destroyTopology(topo) : [];
  try {
    const { Datapath } = require('../datapath/datapath') as typeof import('../datapath/datapath');
    for (const n of plan.nodes) {
      try { Datapath.cleanup(n.name); } catch (e) { problems.push(describeError(e)); }
    }
  } catch (e) {
    problems.push(`cannot load the datapath module to remove the nodes' pins and cgroups: ${describeError(e)}`);
  }
  return problems;
}
