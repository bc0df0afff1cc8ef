import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathOnly } from '../../src/adapters/log/logger.js';

describe('request log path', () => {
  it('drops the query string', () => {
    assert.equal(pathOnly('/v1/customers?email=jane@example.org'), '/v1/customers?…');
  });
  it('masks long digit runs (a card number in a path never reaches the log)', () => {
    assert.equal(pathOnly('/v1/x/4111111111111111'), '/v1/x/[digits]');
    assert.equal(pathOnly('/v1/x/4111-1111-1111-1111/y'), '/v1/x/[digits]/y');
    assert.equal(pathOnly('/v1/x/4111%201111%201111%201111'), '/v1/x/[digits]');
    assert.equal(pathOnly('/v1/invoices/inv_0k3abc123/finalize'), '/v1/invoices/inv_0k3abc123/finalize');
  });
});
