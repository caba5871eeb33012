export { hashPassword, verifyPassword, generateOneTimePassword, ARGON2_OPTIONS } from './password.js';
export { createAccount, findOrCreateTenant, emailIndex, emailIndexCandidates, emailAad, newAccountSchema, ROLES, type Role, type NewAccount, type CreatedAccount, type AccountKeys } from './create.js';
export { findUserByEmail, findUserByEmailIndex, findUserById, rolesOf, decryptEmail, setPassword, type UserRow } from './repository.js';
export { findOrLinkOidcUser, replaceMemberships, effectiveOidcRoles, OIDC_DEFAULT_TENANT, type OidcIdentity, type OidcLinkOptions, type OidcLinkResult, type OidcLinkFailure } from './oidc.js';
