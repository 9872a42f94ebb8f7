// Kubernetes object names, the way the API server checks them (apimachinery's
// IsDNS1123Label / IsDNS1123Subdomain). Node names and service account names are DNS
// subdomains: lower-case letters, digits, '-' and '.', starting and ending with a letter
// or digit, at most 253 characters (an EKS node is `ip-10-0-1-2.ec2.internal`). Like the
// API server, the subdomain check does not limit each dot-separated part to 63.

export const DNS_LABEL_MAX = 63;
export const DNS_SUBDOMAIN_MAX = 253;

/** For JSON Schemas (with maxLength DNS_SUBDOMAIN_MAX). */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const SUBDOMAIN = new RegExp(DNS_SUBDOMAIN_PATTERN);
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDnsLabel(s: string): boolean {
  return typeof s === 'string' && s.length <= DNS_LABEL_MAX && LABEL.test(s);
}

export function isDnsSubdomain(s: string): boolean {
  return typeof s === 'string' && s.length <= DNS_SUBDOMAIN_MAX && SUBDOMAIN.test(s);
}

/** Why `s` is not a DNS subdomain (for error messages), or null when it is one. */
export function dnsSubdomainError(s: unknown): string | null {
  if (typeof s !== 'string' || s === '') return 'must not be empty';
  if (s.length > DNS_SUBDOMAIN_MAX) return `is ${s.length} characters long, at most ${DNS_SUBDOMAIN_MAX} are allowed`;
  if (!SUBDOMAIN.test(s)) return 'must be a DNS-1123 subdomain: lower-case letters, digits, \'-\' and \'.\', each dot-separated part starting and ending with a letter or digit';
  return null;
}
