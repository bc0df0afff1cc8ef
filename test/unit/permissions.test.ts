import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Actor, can, PERMISSIONS, ROLE_PERMISSIONS, ROLES } from '../../src/domain/permissions.js';

const actor = (role: Actor['role'], extra: Partial<Actor> = {}): Actor => ({
  kind: 'user',
  id: 'usr_1',
  userId: 'usr_1',
  orgId: 'org_a',
  role,
  ...extra,
});

describe('policy', () => {
  it('grants the owner everything and nobody anything outside their role', () => {
    for (const p of PERMISSIONS) assert.ok(can(actor('owner'), p));
    for (const role of ROLES) {
      for (const p of PERMISSIONS)
        assert.equal(can(actor(role), p), ROLE_PERMISSIONS[role].has(p), `${role} ${p}`);
    }
  });

  it('keeps read-only roles read-only and masks PII for viewer and auditor', () => {
    for (const role of ['viewer', 'auditor'] as const) {
      for (const p of ROLE_PERMISSIONS[role]) assert.match(p, /:read$/, `${role} has ${p}`);
      assert.equal(can(actor(role), 'customers:read_pii'), false);
    }
    assert.equal(can(actor('admin'), 'keys:export'), false);
    assert.equal(can(actor('accountant'), 'refunds:write'), false);
    assert.equal(can(actor('sales_rep'), 'payments:write'), false);
  });

  it('narrows by API key scopes', () => {
    const key = actor('owner', { kind: 'api_key', scopes: new Set(['invoices:read']) });
    assert.ok(can(key, 'invoices:read'));
    assert.equal(can(key, 'invoices:write'), false);
    // a scope cannot widen a role
    assert.equal(can(actor('viewer', { scopes: new Set(['invoices:write']) }), 'invoices:write'), false);
  });

  it('denies other orgs and unassigned records for sales reps', () => {
    assert.equal(can(actor('owner'), 'customers:read', { orgId: 'org_b' }), false);
    const rep = actor('sales_rep');
    assert.ok(can(rep, 'customers:read', { orgId: 'org_a', ownerUserId: 'usr_1' }));
    assert.equal(can(rep, 'customers:read', { orgId: 'org_a', ownerUserId: 'usr_2' }), false);
    assert.equal(can(rep, 'customers:read', { orgId: 'org_a', ownerUserId: null }), false);
    assert.ok(can(actor('accountant'), 'customers:read', { orgId: 'org_a', ownerUserId: 'usr_2' }));
  });

  it('denies an unknown role', () => {
    assert.equal(can({ ...actor('owner'), role: 'root' as Actor['role'] }, 'invoices:read'), false);
  });
});
