/**
 * Permissions, roles and the one policy function. Deny by default: an actor can do only
 * what its role grants, narrowed by its scopes (API keys) and by record-level rules.
 */
export const PERMISSIONS = [
  'org:read',
  'settings:read',
  'settings:write',
  'users:read',
  'users:manage',
  'keys:manage',
  'keys:export',
  'api_keys:manage',
  'customers:read',
  'customers:read_pii',
  'customers:write',
  'catalog:read',
  'catalog:write',
  'quotes:read',
  'quotes:write',
  'invoices:read',
  'invoices:write',
  'invoices:finalize',
  'invoices:void',
  'credit_notes:write',
  'payments:read',
  'payments:write',
  'refunds:write',
  'refunds:approve',
  'reports:read',
  'exports:create',
  'ledger:read',
  'audit:read',
  'gdpr:export',
  'gdpr:erase',
  'gdpr:legal_hold',
  'privacy:read',
  'restricted_data:read',
  'break_glass:grant',
  'webhooks:manage',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const ROLES = [
  'owner',
  'admin',
  'finance_manager',
  'accountant',
  'sales_rep',
  'viewer',
  'auditor',
] as const;
export type Role = (typeof ROLES)[number];

const READ_FINANCIAL: Permission[] = [
  'org:read',
  'customers:read',
  'catalog:read',
  'quotes:read',
  'invoices:read',
  'payments:read',
  'reports:read',
  'ledger:read',
];

/** The roles of DESIGN.md §5 as data. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  owner: new Set(PERMISSIONS),
  admin: new Set<Permission>([
    ...READ_FINANCIAL,
    'customers:read_pii',
    'settings:read',
    'settings:write',
    'users:read',
    'users:manage',
    'keys:manage',
    'api_keys:manage',
    'audit:read',
    'webhooks:manage',
    'gdpr:legal_hold',
    'privacy:read',
  ]),
  finance_manager: new Set<Permission>([
    ...READ_FINANCIAL,
    'customers:read_pii',
    'customers:write',
    'catalog:write',
    'quotes:write',
    'invoices:write',
    'invoices:finalize',
    'invoices:void',
    'credit_notes:write',
    'payments:write',
    'refunds:write',
    'refunds:approve',
    'exports:create',
    'gdpr:export',
  ]),
  accountant: new Set<Permission>([
    ...READ_FINANCIAL,
    'customers:read_pii',
    'invoices:write',
    'invoices:finalize',
    'credit_notes:write',
    'payments:write',
  ]),
  sales_rep: new Set<Permission>([
    'org:read',
    'customers:read',
    'customers:read_pii',
    'customers:write',
    'catalog:read',
    'quotes:read',
    'quotes:write',
    'invoices:read',
    'invoices:write',
  ]),
  viewer: new Set<Permission>(READ_FINANCIAL.filter((p) => p !== 'ledger:read')),
  auditor: new Set<Permission>([
    'org:read',
    'audit:read',
    'ledger:read',
    'reports:read',
    'invoices:read',
    'payments:read',
    'privacy:read',
    'restricted_data:read',
  ]),
};

/** Who is acting: a user through a session, an API key, or the system itself. */
export interface Actor {
  kind: 'user' | 'api_key' | 'system';
  id: string;
  orgId: string;
  role: Role;
  /** For API keys: the subset of the role's permissions the key was given. */
  scopes?: ReadonlySet<Permission>;
  userId?: string;
  sessionId?: string;
}

/** A record the action touches, for record-level rules (e.g. a sales rep's assigned customers). */
export interface ResourceRef {
  orgId: string;
  ownerUserId?: string | null;
}

/** Permissions an actor effectively holds: its role's, narrowed by its scopes. */
export function effectivePermissions(actor: Actor): Set<Permission> {
  const base = ROLE_PERMISSIONS[actor.role];
  const out = new Set<Permission>();
  for (const p of base) if (!actor.scopes || actor.scopes.has(p)) out.add(p);
  return out;
}

/** The one policy decision: may this actor perform this action on this resource? Deny by default. */
export function can(actor: Actor, action: Permission, resource?: ResourceRef): boolean {
  if (!(ROLE_PERMISSIONS[actor.role]?.has(action) ?? false)) return false;
  if (actor.scopes && !actor.scopes.has(action)) return false;
  if (resource) {
    if (resource.orgId !== actor.orgId) return false;
    if (actor.role === 'sales_rep' && resource.ownerUserId !== undefined) {
      return resource.ownerUserId !== null && resource.ownerUserId === actor.userId;
    }
  }
  return true;
}

/** True when the string names a known permission. */
export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}

/** True when the string names a known role. */
export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
