import ipaddr from 'ipaddr.js';

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/** How a host was written: an address literal (in any spelling the system resolver also accepts) or a name. */
export type ParsedHost = { kind: 'address'; address: IpAddress } | { kind: 'name'; name: string } | { kind: 'invalid' };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Reads a host as a connection would: one pair of brackets around an IPv6 literal, trailing dots and case are
 * dropped; IPv4 in decimal, octal, hexadecimal or short forms (`2130706434`, `0177.0.0.1`, `127.1`) is an address,
 * as it is for getaddrinfo; an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) becomes the IPv4 address it carries.
 */
export function parseHost(input: string): ParsedHost {
  let host = input.trim().toLowerCase().replace(/\.+$/, '');
  const bracketed = host.startsWith('[') && host.endsWith(']');
  if (bracketed) host = host.slice(1, -1);
  if (host === '' || host.length > 253) return { kind: 'invalid' };
  if (bracketed) return ipaddr.IPv6.isValid(host) ? { kind: 'address', address: unmapped(ipaddr.IPv6.parse(host)) } : { kind: 'invalid' };
  if (ipaddr.isValid(host)) return { kind: 'address', address: unmapped(ipaddr.parse(host)) };
  return host.split('.').every((label) => LABEL.test(label)) ? { kind: 'name', name: host } : { kind: 'invalid' };
}

/** The IPv4 address inside an IPv4-mapped IPv6 address; any other address unchanged. */
export function unmapped(address: IpAddress): IpAddress {
  return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() ? (address as ipaddr.IPv6).toIPv4Address() : address;
}

/** Parses an address as a resolver returns it (canonical text), unmapping IPv4-mapped IPv6. */
export function parseAddress(text: string): IpAddress | undefined {
  return ipaddr.isValid(text) ? unmapped(ipaddr.parse(text)) : undefined;
}

/**
 * Ranges that ipaddr.js counts as `unicast` but that must not be reached either: IPv4-compatible IPv6 (`::/96`,
 * deprecated, may carry an internal IPv4 address).
 */
const EXTRA_INTERNAL: ReadonlyArray<[string, [IpAddress, number]]> = [['ipv4Compatible', ipaddr.parseCIDR('::/96')]];

/**
 * The range of an address: `unicast` for a global unicast address, else the name of the special range it is in
 * (`loopback`, `private`, `uniqueLocal`, `linkLocal`, `carrierGradeNat`, `multicast`, `unspecified`, `broadcast`,
 * `reserved`, `6to4`, `teredo`, `rfc6052`, …). Only `unicast` addresses are public.
 */
export function rangeOf(address: IpAddress): string {
  const range = address.range();
  if (range !== 'unicast') return range;
  return EXTRA_INTERNAL.find(([, cidr]) => sameFamilyMatch(address, cidr))?.[0] ?? range;
}

export function sameFamilyMatch(address: IpAddress, cidr: readonly [IpAddress, number]): boolean {
  return address.kind() === cidr[0].kind() && address.match([cidr[0], cidr[1]]);
}

/** Canonical text of an address (RFC 5952 for IPv6), as given to `net.connect`. */
export function addressText(address: IpAddress): string {
  return address.kind() === 'ipv6' ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();
}
