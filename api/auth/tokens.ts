import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, exportJWK, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { UnauthorizedError } from '../../shared/errors.js';

export const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
export const TOKEN_ISSUER = 'botserver';
export const ACCESS_AUDIENCE = 'botserver-api';
export const GUEST_AUDIENCE = 'botserver-guest';
export const GUEST_TOKEN_TTL_SECONDS = 24 * 3600;

export interface AccessClaims {
  sub: string;
  sid: string;
  tid: string;
  roles: string[];
  jti: string;
}

/** A guest of a public bot: may join and write one conversation only. */
export interface GuestClaims {
  sub: string;
  tid: string;
  bid: string;
  cid: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

/** RS256 access tokens: signed with BOTSERVER_JWT_PRIVATE_KEY, verified against our own JWKS (by `kid`). */
export class TokenService {
  private readonly privateKey: KeyObject;
  private readonly kid: string;
  private readonly publicJwks: JSONWebKeySet;
  private readonly keySet: ReturnType<typeof createLocalJWKSet>;

  private constructor(privateKey: KeyObject, kid: string, publicJwk: JWK) {
    this.privateKey = privateKey;
    this.kid = kid;
    this.publicJwks = { keys: [{ ...publicJwk, kid, alg: 'RS256', use: 'sig' }] };
    this.keySet = createLocalJWKSet(this.publicJwks);
  }

  static async fromPem(privateKeyPem: string): Promise<TokenService> {
    const privateKey = createPrivateKey(privateKeyPem);
    const publicJwk = await exportJWK(createPublicKey(privateKey));
    const kid = await calculateJwkThumbprint(publicJwk);
    return new TokenService(privateKey, kid, publicJwk);
  }

  get jwks(): JSONWebKeySet {
    return this.publicJwks;
  }

  async sign(claims: Omit<AccessClaims, 'jti'>): Promise<string> {
    return new SignJWT({ sid: claims.sid, tid: claims.tid, roles: claims.roles })
      .setProtectedHeader({ alg: 'RS256', kid: this.kid, typ: 'at+jwt' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(ACCESS_AUDIENCE)
      .setSubject(claims.sub)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${ACCESS_TOKEN_TTL_SECONDS}s`)
      .sign(this.privateKey);
  }

  /** Verifies signature (RS256 only, key chosen by kid), issuer, audience, expiry and claim shapes. */
  async verify(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, this.keySet, {
        algorithms: ['RS256'],
        issuer: TOKEN_ISSUER,
        audience: ACCESS_AUDIENCE,
        typ: 'at+jwt',
        requiredClaims: ['sub', 'jti', 'exp', 'iat'],
      });
      const { sub, sid, tid, roles, jti } = payload;
      if (typeof sub !== 'string' || typeof sid !== 'string' || typeof tid !== 'string' || typeof jti !== 'string') throw new Error('claims');
      if (!Array.isArray(roles) || !roles.every((role) => typeof role === 'string')) throw new Error('roles');
      return { sub, sid, tid, roles: roles, jti };
    } catch {
      throw new UnauthorizedError('unauthorized', 'The access token is not valid');
    }
  }

  async signGuest(claims: Omit<GuestClaims, 'sub' | 'exp'>): Promise<string> {
    return new SignJWT({ tid: claims.tid, bid: claims.bid, cid: claims.cid })
      .setProtectedHeader({ alg: 'RS256', kid: this.kid, typ: 'guest+jwt' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(GUEST_AUDIENCE)
      .setSubject(`guest:${randomUUID()}`)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${GUEST_TOKEN_TTL_SECONDS}s`)
      .sign(this.privateKey);
  }

  async verifyGuest(token: string): Promise<GuestClaims> {
    try {
      const { payload } = await jwtVerify(token, this.keySet, {
        algorithms: ['RS256'],
        issuer: TOKEN_ISSUER,
        audience: GUEST_AUDIENCE,
        typ: 'guest+jwt',
        requiredClaims: ['sub', 'jti', 'exp', 'iat'],
      });
      const { sub, tid, bid, cid, exp } = payload;
      if (typeof sub !== 'string' || typeof tid !== 'string' || typeof bid !== 'string' || typeof cid !== 'string' || typeof exp !== 'number') throw new Error('claims');
      return { sub, tid, bid, cid, exp };
    } catch {
      throw new UnauthorizedError('unauthorized', 'The guest token is not valid');
    }
  }
}
