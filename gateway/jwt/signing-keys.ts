/**
 * The issuer's key ring lives in core/signing-keys.ts since issue 17: sandbox workers sign
 * pipeline id-tokens with the same rotating keys the gateway signs access tokens with and publishes.
 */
export { OWN_ALG, SigningKeys, type KeyRotation } from '../../core/signing-keys';
