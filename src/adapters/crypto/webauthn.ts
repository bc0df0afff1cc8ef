import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';

/** The relying party: derived from BILLVAULT_PUBLIC_URL (RP ID = its host name). */
export interface RelyingParty {
  id: string;
  name: string;
  origin: string;
}

export function relyingPartyFromUrl(publicUrl: string, name = 'Billvault'): RelyingParty {
  const u = new URL(publicUrl);
  return { id: u.hostname, name, origin: u.origin };
}

export interface StoredCredential {
  id: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
}

/** WebAuthn ceremonies (via @simplewebauthn/server): user verification is always required. */
export interface WebAuthn {
  readonly rp: RelyingParty;
  registrationOptions(input: {
    userHandle: Uint8Array;
    userName: string;
    exclude: { id: string; transports: string[] }[];
  }): Promise<PublicKeyCredentialCreationOptionsJSON>;
  verifyRegistration(
    response: RegistrationResponseJSON,
    expectedChallenge: string,
  ): Promise<{
    id: string;
    publicKey: Uint8Array;
    counter: number;
    transports: string[];
    aaguid: string;
  } | null>;
  authenticationOptions(
    allow: { id: string; transports: string[] }[],
  ): Promise<PublicKeyCredentialRequestOptionsJSON>;
  verifyAuthentication(
    response: AuthenticationResponseJSON,
    expectedChallenge: string,
    credential: StoredCredential,
  ): Promise<{ newCounter: number } | null>;
}

const TIMEOUT_MS = 5 * 60_000;

export function createWebAuthn(rp: RelyingParty): WebAuthn {
  return {
    rp,
    registrationOptions: ({ userHandle, userName, exclude }) =>
      generateRegistrationOptions({
        rpName: rp.name,
        rpID: rp.id,
        userName,
        userID: new Uint8Array(userHandle),
        timeout: TIMEOUT_MS,
        attestationType: 'none',
        excludeCredentials: exclude,
        authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
      }),
    async verifyRegistration(response, expectedChallenge) {
      try {
        const r = await verifyRegistrationResponse({
          response,
          expectedChallenge,
          expectedOrigin: rp.origin,
          expectedRPID: rp.id,
          requireUserVerification: true,
        });
        if (!r.verified) return null;
        const c = r.registrationInfo.credential;
        return {
          id: c.id,
          publicKey: new Uint8Array(c.publicKey),
          counter: c.counter,
          transports: c.transports ?? [],
          aaguid: r.registrationInfo.aaguid,
        };
      } catch {
        return null;
      }
    },
    authenticationOptions: (allow) =>
      generateAuthenticationOptions({
        rpID: rp.id,
        allowCredentials: allow,
        timeout: TIMEOUT_MS,
        userVerification: 'required',
      }),
    async verifyAuthentication(response, expectedChallenge, credential) {
      try {
        const r = await verifyAuthenticationResponse({
          response,
          expectedChallenge,
          expectedOrigin: rp.origin,
          expectedRPID: rp.id,
          credential: {
            id: credential.id,
            publicKey: new Uint8Array(credential.publicKey),
            counter: credential.counter,
            transports: credential.transports,
          },
          requireUserVerification: true,
        });
        return r.verified ? { newCounter: r.authenticationInfo.newCounter } : null;
      } catch {
        return null;
      }
    },
  };
}
