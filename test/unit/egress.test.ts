/**
 * The egress policy as pure decisions: no test here opens a socket or asks DNS. Names resolve through a stub
 * resolver; addresses outside loopback are only ever classified, never contacted.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { loadConfig } from '../../shared/config/index.js';
import { ConfigError } from '../../shared/errors.js';
import { parseHost } from '../../shared/net/addresses.js';
import { decideAddress, EgressDeniedError, EgressPolicy, EgressResolveError, parseAllowList, type EgressRequest, type Resolver } from '../../shared/net/egress.js';
import { freshDataDir, randomHexKey } from '../helpers/config.js';

/** A resolver that fails the test when it is asked at all: an address literal must never be resolved. */
const noResolver: Resolver = (name) => Promise.reject(new Error(`the resolver was asked for ${name}`));

/** A stub resolver answering from a table; unknown names do not resolve. */
function stubResolver(table: Record<string, string[]>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  const resolver = (name: string): Promise<Array<{ address: string; family: number }>> => {
    asked.push(name);
    const answers = table[name];
    if (answers === undefined) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
    return Promise.resolve(answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
  return Object.assign(resolver, { asked });
}

const request = (host: string, port = 993, protocol: EgressRequest['protocol'] = 'imap'): EgressRequest => ({ host, port, protocol, field: 'email.imap' });

async function refusal(policy: EgressPolicy, req: EgressRequest): Promise<EgressDeniedError> {
  try {
    await policy.check(req);
  } catch (error) {
    if (error instanceof EgressDeniedError) return error;
    throw error;
  }
  return expect.fail(`${req.host}:${req.port} was allowed`);
}

/** The addresses the issue names, each with the range it must be refused as. */
const INTERNAL: Array<[string, string]> = [
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['::1', 'loopback'],
  ['10.0.0.1', 'private'],
  ['172.16.5.4', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.1', 'private'],
  ['fd00::1', 'uniqueLocal'],
  ['fd00:ec2::254', 'uniqueLocal'],
  ['fc00::1', 'uniqueLocal'],
  ['169.254.169.254', 'linkLocal'],
  ['169.254.0.1', 'linkLocal'],
  ['fe80::1', 'linkLocal'],
  ['100.64.0.1', 'carrierGradeNat'],
  ['100.127.255.254', 'carrierGradeNat'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['ff02::1', 'multicast'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['::', 'unspecified'],
  ['255.255.255.255', 'broadcast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.10', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['2002:7f00:1::', '6to4'],
  ['64:ff9b::7f00:1', 'rfc6052'],
  ['64:ff9b:1::a00:1', 'rfc6052'],
  ['::7f00:1', 'ipv4Compatible'],
  ['2001::1', 'teredo'],
];

const PUBLIC = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450:4001:80b::200e'];

describe('egress policy: decisions on addresses (never contacted)', () => {
  const policy = new EgressPolicy({ allow: [], resolver: noResolver });

  for (const [address, range] of INTERNAL) {
    it(`refuses ${address} (${range}) with 400 egress_denied naming the host field`, async () => {
      const error = await refusal(policy, request(address));
      expect(error.status).to.equal(400);
      expect(error.code).to.equal('egress_denied');
      expect(error.field).to.equal('email.imap.host');
      expect(error.reason).to.equal(range);
      expect(error.message).to.not.include(address);
    });
  }

  it('allows public unicast addresses on the usual ports, and hands back the address to connect to', async () => {
    for (const address of PUBLIC) {
      const destination = await policy.check(request(address, 993));
      expect(destination.address).to.equal(address);
      expect(destination.servername, 'an address literal gets no SNI name').to.equal(undefined);
      expect(decideAddress(policy.allow, [], ipaddr.parse(address))).to.deep.equal({ allowed: true, listed: false });
    }
  });

  it('limits public destinations to the protocol\'s usual ports (IMAP 143/993, SMTP 25/465/587)', async () => {
    for (const port of [143, 993]) expect((await policy.check(request('8.8.8.8', port, 'imap'))).port).to.equal(port);
    for (const port of [25, 465, 587]) expect((await policy.check(request('8.8.8.8', port, 'smtp'))).port).to.equal(port);
    for (const [port, protocol] of [[22, 'imap'], [6379, 'imap'], [5432, 'smtp'], [993, 'smtp'], [587, 'imap'], [80, 'smtp']] as const) {
      const error = await refusal(policy, { host: '8.8.8.8', port, protocol, field: `email.${protocol}` });
      expect(error.reason).to.equal('port');
      expect(error.field).to.equal(`email.${protocol}.port`);
    }
  });

  it('refuses hosts that are neither an address nor a host name', async () => {
    for (const host of ['', '[]', '[127.0.0.1]', 'exa mple.com', '-bad.example', 'a..b', `${'a'.repeat(64)}.example`, '[::1']) {
      expect((await refusal(policy, request(host))).reason, host).to.equal('invalid_host');
    }
  });

  it("refuses the server's own listen addresses unless listed", async () => {
    const own = new EgressPolicy({ allow: [], ownAddresses: [ipaddr.parse('203.0.113.9'), ipaddr.parse('8.8.4.4')], resolver: noResolver });
    expect((await refusal(own, request('8.8.4.4'))).reason).to.equal('own_address');
    const listed = new EgressPolicy({ allow: ['8.8.4.4'], ownAddresses: [ipaddr.parse('8.8.4.4')], resolver: noResolver });
    expect((await listed.check(request('8.8.4.4', 1993))).address).to.equal('8.8.4.4');
  });
});

describe('egress policy: BOTSERVER_EGRESS_ALLOW', () => {
  it('opens listed CIDRs, single addresses and `loopback`, on any port', async () => {
    const policy = new EgressPolicy({ allow: ['10.20.0.0/16', '192.168.7.7', 'loopback', 'fd12::/16'], resolver: noResolver });
    for (const [host, port] of [['10.20.3.4', 1143], ['192.168.7.7', 2525], ['127.0.0.2', 6379], ['::1', 143], ['fd12::5', 993], ['::ffff:10.20.0.1', 25]] as const) {
      const destination = await policy.check(request(host, port));
      expect(destination.port).to.equal(port);
    }
    for (const host of ['10.21.0.1', '192.168.7.8', 'fd13::1', '169.254.169.254']) await refusal(policy, request(host));
  });

  it('opens a listed host name whatever it resolves to, and only that name', async () => {
    const resolver = stubResolver({ 'mail.internal': ['10.9.8.7'], 'other.internal': ['10.9.8.7'] });
    const policy = new EgressPolicy({ allow: ['Mail.Internal.'], resolver });
    const destination = await policy.check(request('MAIL.internal', 1143));
    expect(destination).to.include({ address: '10.9.8.7', port: 1143, servername: 'mail.internal' });
    expect((await refusal(policy, request('other.internal'))).reason).to.equal('private');
  });

  it('parses entries and refuses bad ones by position', () => {
    const list = parseAllowList(['loopback', '10.0.0.0/8', 'Mail.Example.COM', '::1']);
    expect(list.names.has('mail.example.com')).to.equal(true);
    expect(list.cidrs).to.have.length(4);
    expect(() => parseAllowList(['10.0.0.0/8', '10.0.0.0/33'])).to.throw('entry 2');
    expect(() => parseAllowList(['not a host'])).to.throw('entry 1');
  });

  const env = (overrides: Record<string, string>): Record<string, string> => ({
    BOTSERVER_DATA_DIR: freshDataDir(),
    BOTSERVER_JWT_SECRET: randomHexKey(),
    BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
    DATABASE_ENCRYPTION_KEY: randomHexKey(),
    ...overrides,
  });

  it('defaults to loopback in development (one warning line) and in tests, to nothing in production; a set value replaces the default', () => {
    const development = loadConfig(env({ NODE_ENV: 'development' }));
    expect(development.egressAllow).to.deep.equal(['loopback']);
    expect(development.warnings.filter((line) => line.includes('BOTSERVER_EGRESS_ALLOW'))).to.have.length(1);
    expect(loadConfig(env({ NODE_ENV: 'test' })).egressAllow).to.deep.equal(['loopback']);
    expect(loadConfig(env({ NODE_ENV: 'development', BOTSERVER_EGRESS_ALLOW: '127.0.0.1/32, mail.internal' })).egressAllow).to.deep.equal(['127.0.0.1/32', 'mail.internal']);
    const explicitEmpty = loadConfig(env({ NODE_ENV: 'development', BOTSERVER_EGRESS_ALLOW: '' }));
    expect(explicitEmpty.egressAllow).to.deep.equal([]);
    expect(explicitEmpty.warnings.some((line) => line.includes('BOTSERVER_EGRESS_ALLOW'))).to.equal(false);
    const productionPem = loadConfig(env({ NODE_ENV: 'test' })).secrets.jwtPrivateKeyPem;
    const production = loadConfig(env({ NODE_ENV: 'production', BOTSERVER_TRUST_PROXY: 'loopback', BOTSERVER_JWT_PRIVATE_KEY: productionPem }));
    expect(production.egressAllow).to.deep.equal([]);
  });

  it('refuses a bad entry at start with the variable named', () => {
    let thrown: unknown;
    try {
      loadConfig(env({ NODE_ENV: 'test', BOTSERVER_EGRESS_ALLOW: 'loopback,10.0.0.0/99' }));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).to.be.instanceOf(ConfigError);
    expect((thrown as ConfigError).variable).to.equal('BOTSERVER_EGRESS_ALLOW');
    expect((thrown as ConfigError).message).to.include('entry 2');
  });
});

describe('egress policy: names are resolved once, through the resolver, and every answer is checked', () => {
  it('connects to the checked address and keeps the name for TLS (SNI, certificate)', async () => {
    const resolver = stubResolver({ 'imap.example.com': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'] });
    const policy = new EgressPolicy({ allow: [], resolver });
    const destination = await policy.check(request('imap.example.com.', 993));
    expect(destination).to.include({ address: '93.184.216.34', port: 993, servername: 'imap.example.com' });
    expect(resolver.asked).to.deep.equal(['imap.example.com']);
  });

  it('refuses a name when any of its addresses is internal (no picking the public one)', async () => {
    const resolver = stubResolver({ 'mixed.example.com': ['93.184.216.34', '10.0.0.5'], 'meta.example.com': ['169.254.169.254'], 'mapped.example.com': ['::ffff:127.0.0.1'] });
    const policy = new EgressPolicy({ allow: [], resolver });
    expect((await refusal(policy, request('mixed.example.com'))).reason).to.equal('private');
    expect((await refusal(policy, request('meta.example.com'))).reason).to.equal('linkLocal');
    expect((await refusal(policy, request('mapped.example.com'))).reason).to.equal('loopback');
  });

  it('a name that does not resolve (or not in time) is EgressResolveError, not a refusal', async () => {
    const policy = new EgressPolicy({ allow: [], resolver: stubResolver({}) });
    let thrown: unknown;
    await policy.check(request('nowhere.example.com')).catch((error: unknown) => (thrown = error));
    expect(thrown).to.be.instanceOf(EgressResolveError);
    const slow = new EgressPolicy({ allow: [], resolver: () => new Promise(() => undefined), resolveTimeoutMs: 20 });
    thrown = undefined;
    await slow.check(request('slow.example.com')).catch((error: unknown) => (thrown = error));
    expect(thrown).to.be.instanceOf(EgressResolveError);
  });
});

// ---- property: every spelling of an address is read as that address ----

/** An IPv4 address (as a 32-bit number) inside one of the CIDRs. */
function ipv4In(cidrs: string[]): fc.Arbitrary<number> {
  return fc.constantFrom(...cidrs).chain((cidr) => {
    const [base, bits] = ipaddr.IPv4.parseCIDR(cidr);
    const start = base.octets.reduce((sum, octet) => sum * 256 + octet, 0);
    const size = 2 ** (32 - bits);
    return fc.integer({ min: 0, max: size - 1 }).map((offset) => (start - (start % size) + offset) >>> 0);
  });
}

const octetsOf = (value: number): number[] => [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
const dotted = (value: number): string => octetsOf(value).join('.');

/** The spellings getaddrinfo (inet_aton) and URL parsers accept for one IPv4 address, and IPv6 wrappings of it. */
function spellings(value: number): fc.Arbitrary<string> {
  const [a = 0, b = 0, c = 0, d = 0] = octetsOf(value);
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const oct = (n: number): string => (n === 0 ? '0' : `0${n.toString(8)}`);
  const h16 = (n: number): string => n.toString(16);
  const forms = [
    dotted(value),
    String(value),
    hex(value),
    `0${value.toString(8)}`,
    [a, b, c, d].map(oct).join('.'),
    [a, b, c, d].map(hex).join('.'),
    `${a}.${b}.${(c << 8) | d}`,
    `${a}.${(b << 16) | (c << 8) | d}`,
    `${hex(a)}.${oct(b)}.${c}.${hex(d)}`,
    `::ffff:${dotted(value)}`,
    `[::ffff:${dotted(value)}]`,
    `::ffff:${h16((a << 8) | b)}:${h16((c << 8) | d)}`,
    `[0:0:0:0:0:ffff:${h16((a << 8) | b)}:${h16((c << 8) | d)}]`,
  ];
  return fc
    .record({ form: fc.constantFrom(...forms), upper: fc.boolean(), dots: fc.integer({ min: 0, max: 2 }) })
    .map(({ form, upper, dots }) => `${upper ? form.toUpperCase() : form}${'.'.repeat(dots)}`);
}

const INTERNAL_V4 = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10', '0.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'];
const PUBLIC_V4 = ['8.8.8.0/24', '1.1.1.0/24', '93.184.216.0/24', '51.15.0.0/16'];

describe('egress policy: property tests over address spellings (fast-check)', () => {
  const policy = new EgressPolicy({ allow: [], resolver: noResolver });

  it('every spelling of an internal IPv4 address (decimal, octal, hex, short, IPv4-mapped, bracketed, trailing dots, upper case) is refused without resolving', async () => {
    await fc.assert(
      fc.asyncProperty(ipv4In(INTERNAL_V4).chain((value) => spellings(value).map((spelling) => ({ value, spelling }))), async ({ value, spelling }) => {
        const parsed = parseHost(spelling);
        expect(parsed.kind, spelling).to.equal('address');
        if (parsed.kind === 'address') expect(parsed.address.toString(), spelling).to.equal(dotted(value));
        await refusal(policy, request(spelling));
      }),
      { numRuns: 500 },
    );
  });

  it('every spelling of a public IPv4 address is read as exactly that address (the one connected to)', async () => {
    await fc.assert(
      fc.asyncProperty(ipv4In(PUBLIC_V4).chain((value) => spellings(value).map((spelling) => ({ value, spelling }))), async ({ value, spelling }) => {
        const destination = await policy.check(request(spelling, 993));
        expect(destination.address, spelling).to.equal(dotted(value));
      }),
      { numRuns: 300 },
    );
  });

  it('a name the resolver maps to an internal address is refused, in any case and with trailing dots', async () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
    await fc.assert(
      fc.asyncProperty(fc.array(label, { minLength: 2, maxLength: 4 }), ipv4In(INTERNAL_V4), fc.boolean(), fc.boolean(), async (labels, value, upper, dot) => {
        fc.pre(!ipaddr.isValid(labels.join('.')));
        const name = labels.join('.');
        const resolver = stubResolver({ [name]: [dotted(value)] });
        const named = new EgressPolicy({ allow: [], resolver });
        const typed = `${upper ? name.toUpperCase() : name}${dot ? '.' : ''}`;
        await refusal(named, request(typed));
        expect(resolver.asked).to.deep.equal([name]);
      }),
      { numRuns: 200 },
    );
  });

  it('parsing never throws, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (input) => {
        expect(['address', 'name', 'invalid']).to.include(parseHost(input).kind);
      }),
      { numRuns: 2000 },
    );
  });
});
