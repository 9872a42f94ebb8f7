// The IPv4/CIDR helpers live in agent/lib/ip.ts; this name is kept for the importers in
// agent/proxy/ until they import agent/lib/ip directly.
export { cidrContains, formatIPv4, hostRange, parseCidr, parseIPv4, type Cidr } from '../lib/ip';
