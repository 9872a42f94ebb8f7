// SPIFFE identities and the principal patterns AuthorizationPolicy accepts.

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

// Namespaces are DNS labels; service accounts DNS subdomains (Kubernetes allows dots).
const FULL = /^(spiffe:\/\/)?[a-z0-9._-]+\/ns\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/sa\/[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Istio forms: "*", a full identity (with or without "spiffe://"), or one with a single
 *  leading or trailing "*" (prefix / suffix match). Returns a reason when invalid. */
export function principalError(p: string): string | null {
  if (p === '*') return null;
  const core = p.startsWith('*') ? p.slice(1) : p.endsWith('*') ? p.slice(0, -1) : p;
  if (core.includes('*')) return `principal "${p}" may only have "*" at its start or end`;
  if (/\s/.test(core) || core === '') return `principal "${p}" is not valid`;
  if (core === p && !FULL.test(p)) return `principal "${p}" is not an identity of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> (or "*", "prefix*", "*suffix")`;
  return null;
}

/** Namespaces in AuthorizationPolicy sources: a name, or a name with a leading/trailing "*". */
export function namespacePatternError(ns: string): string | null {
  if (ns === '*') return null;
  const core = ns.startsWith('*') ? ns.slice(1) : ns.endsWith('*') ? ns.slice(0, -1) : ns;
  if (!/^[-a-z0-9]+$/.test(core)) return `namespace "${ns}" is not a valid namespace or pattern`;
  return null;
}

/** Paths in AuthorizationPolicy operations: exact, "prefix*", "*suffix" or "*". */
export function authzPathError(p: string): string | null {
  if (p === '*') return null;
  const core = p.startsWith('*') ? p.slice(1) : p.endsWith('*') ? p.slice(0, -1) : p;
  if (core.includes('*')) return `path "${p}" may only have "*" at its start or end`;
  return null;
}
