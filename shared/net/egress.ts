import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';
import { AppError } from '../errors.js';
import { addressText, parseAddress, parseHost, rangeOf, sameFamilyMatch, type IpAddress } from './addresses.js';

/** Protocols a tenant may point the server at, with the ports they use unless the destination is allowed. */
export const USUAL_PORTS = { imap: [143, 993], smtp: [25, 465, 587] } as const satisfies Record<string, readonly number[]>;
export type EgressProtocol = keyof typeof USUAL_PORTS;

/** `BOTSERVER_EGRESS_ALLOW` entry for the loopback ranges (127.0.0.0/8 and ::1). */
export const LOOPBACK_ENTRY = 'loopback';
const LOOPBACK_CIDRS = ['127.0.0.0/8', '::1/128'];

export interface AllowList {
  readonly cidrs: ReadonlyArray<readonly [IpAddress, number]>;
  /** Host names (lower case, no trailing dot) a deployment trusts whatever they resolve to. */
  readonly names: ReadonlySet<string>;
}

/** One allow-list entry; undefined when it is neither `loopback`, an address, a CIDR nor a host name. */
function parseEntry(entry: string): { cidrs: Array<[IpAddress, number]>; name?: string } | undefined {
  const value = entry.trim().toLowerCase();
  if (value === LOOPBACK_ENTRY) return { cidrs: LOOPBACK_CIDRS.map((cidr) => ipaddr.parseCIDR(cidr)) };
  if (value.includes('/')) {
    if (!ipaddr.isValidCIDR(value)) return undefined;
    const [address, bits] = ipaddr.parseCIDR(value);
    return { cidrs: [[address, bits]] };
  }
  const host = parseHost(value);
  if (host.kind === 'address') return { cidrs: [[host.address, host.address.kind() === 'ipv4' ? 32 : 128]] };
  if (host.kind === 'name') return { cidrs: [], name: host.name };
  return undefined;
}

/** The position (1-based) of the first entry that is not valid, or undefined when all are. */
export function invalidAllowEntry(entries: readonly string[]): number | undefined {
  const index = entries.findIndex((entry) => parseEntry(entry) === undefined);
  return index < 0 ? undefined : index + 1;
}

export function parseAllowList(entries: readonly string[]): AllowList {
  const cidrs: Array<readonly [IpAddress, number]> = [];
  const names = new Set<string>();
  entries.forEach((entry, index) => {
    const parsed = parseEntry(entry);
    if (parsed === undefined) throw new Error(`BOTSERVER_EGRESS_ALLOW entry ${index + 1} is not an address, CIDR, host name or "loopback"`);
    cidrs.push(...parsed.cidrs);
    if (parsed.name !== undefined) names.add(parsed.name);
  });
  return { cidrs, names };
}

export type AddressDecision = { allowed: true; listed: boolean } | { allowed: false; reason: string };

/**
 * Whether an address may be contacted (a pure decision): an address inside an allowed CIDR may; otherwise the
 * server's own addresses may not, and of the rest only global unicast addresses may (no loopback, RFC 1918, RFC
 * 4193, link-local, CGNAT, multicast, unspecified, broadcast, reserved or transition ranges).
 */
export function decideAddress(allow: AllowList, ownAddresses: readonly IpAddress[], address: IpAddress): AddressDecision {
  if (allow.cidrs.some((cidr) => sameFamilyMatch(address, cidr))) return { allowed: true, listed: true };
  if (ownAddresses.some((own) => own.kind() === address.kind() && own.toNormalizedString() === address.toNormalizedString())) {
    return { allowed: false, reason: 'own_address' };
  }
  const range = rangeOf(address);
  return range === 'unicast' ? { allowed: true, listed: false } : { allowed: false, reason: range };
}

export interface ResolvedAddress {
  address: string;
  family: number;
}
/** Name resolution; tests replace it with a stub so that names resolve without DNS. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, order: 'verbatim' });

export interface EgressRequest {
  host: string;
  port: number;
  protocol: EgressProtocol;
  /** The input field the destination came from (`email.imap`): refusals name `<field>.host` or `<field>.port`. */
  field: string;
}

declare const checked: unique symbol;

/**
 * A destination the policy allowed: connect to `address` (never resolve `host` again, so DNS rebinding cannot
 * switch it) and present `servername` for TLS (SNI and certificate checks), which is the host name as typed, or
 * undefined when an address was typed. Only `EgressPolicy.check` makes these.
 */
export interface CheckedDestination {
  readonly address: string;
  readonly port: number;
  readonly servername: string | undefined;
  readonly [checked]: true;
}

/** 400 `egress_denied`: the destination is not allowed; no socket was opened. */
export class EgressDeniedError extends AppError {
  readonly reason: string;
  readonly protocol: EgressProtocol;
  readonly host: string;
  constructor(request: EgressRequest, reason: string) {
    const portRefused = reason === 'port';
    const message = portRefused
      ? `Port ${request.port} is not allowed for ${request.protocol.toUpperCase()} by this server's egress policy (usual ports: ${USUAL_PORTS[request.protocol].join(', ')})`
      : `The address is not allowed by this server's egress policy (loopback, private, link-local and other internal addresses are refused unless BOTSERVER_EGRESS_ALLOW lists them)`;
    super('egress_denied', message, { status: 400, expose: true, field: `${request.field}.${portRefused ? 'port' : 'host'}` });
    this.reason = reason;
    this.protocol = request.protocol;
    this.host = request.host;
  }
}

/** The host name did not resolve (or not in time): for a connection test this is `unreachable`. */
export class EgressResolveError extends Error {
  readonly code = 'ENOTFOUND';
  constructor(cause?: unknown) {
    super('the host name could not be resolved', cause === undefined ? undefined : { cause });
    this.name = 'EgressResolveError';
  }
}

export interface EgressPolicyOptions {
  /** `BOTSERVER_EGRESS_ALLOW` entries. */
  allow: readonly string[];
  /** The server's own listen addresses. */
  ownAddresses?: readonly IpAddress[];
  resolver?: Resolver;
  resolveTimeoutMs?: number;
}

/**
 * The one egress policy for connections to addresses a tenant chose (the e-mail channel's IMAP and SMTP servers):
 * the host is resolved once, every address it resolves to is checked, and the caller connects to the checked one.
 */
export class EgressPolicy {
  readonly allow: AllowList;
  readonly ownAddresses: readonly IpAddress[];
  private readonly resolver: Resolver;
  private readonly resolveTimeoutMs: number;

  constructor(options: EgressPolicyOptions) {
    this.allow = parseAllowList(options.allow);
    this.ownAddresses = options.ownAddresses ?? [];
    this.resolver = options.resolver ?? systemResolver;
    this.resolveTimeoutMs = options.resolveTimeoutMs ?? 5000;
  }

  /** Resolves (once) and checks a destination; throws EgressDeniedError or EgressResolveError. */
  async check(request: EgressRequest): Promise<CheckedDestination> {
    const host = parseHost(request.host);
    if (host.kind === 'invalid') throw new EgressDeniedError(request, 'invalid_host');
    let address: IpAddress;
    let listed: boolean;
    if (host.kind === 'address') {
      const decision = decideAddress(this.allow, this.ownAddresses, host.address);
      if (!decision.allowed) throw new EgressDeniedError(request, decision.reason);
      address = host.address;
      listed = decision.listed;
    } else {
      const addresses = await this.resolve(host.name);
      const first = addresses[0];
      if (first === undefined) throw new EgressResolveError();
      listed = this.allow.names.has(host.name);
      if (!listed) {
        const decisions = addresses.map((candidate) => decideAddress(this.allow, this.ownAddresses, candidate));
        const refused = decisions.find((decision) => !decision.allowed);
        if (refused !== undefined && !refused.allowed) throw new EgressDeniedError(request, refused.reason);
        listed = decisions.every((decision) => decision.allowed && decision.listed);
      }
      address = first;
    }
    const usual: readonly number[] = USUAL_PORTS[request.protocol];
    if (!listed && !usual.includes(request.port)) throw new EgressDeniedError(request, 'port');
    return { address: addressText(address), port: request.port, servername: host.kind === 'name' ? host.name : undefined } as CheckedDestination;
  }

  private async resolve(name: string): Promise<IpAddress[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EgressResolveError()), this.resolveTimeoutMs);
    });
    try {
      const answers = await Promise.race([this.resolver(name), timeout]);
      return answers.map((answer) => parseAddress(answer.address)).filter((address): address is IpAddress => address !== undefined);
    } catch (error) {
      throw error instanceof EgressResolveError ? error : new EgressResolveError(error);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The addresses this server listens on: its BOTSERVER_HOST, or every interface address when it listens on all of
 * them (`0.0.0.0`, `::`).
 */
export function ownListenAddresses(listenHost: string): IpAddress[] {
  const host = parseHost(listenHost);
  if (host.kind !== 'address') return [];
  if (rangeOf(host.address) !== 'unspecified') return [host.address];
  return Object.values(networkInterfaces())
    .flatMap((entries) => entries ?? [])
    .map((entry) => parseAddress(entry.address))
    .filter((address): address is IpAddress => address !== undefined);
}
