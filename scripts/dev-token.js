#!/usr/bin/env node
// Prints a development JWT (HS256, 24 h) signed with JWT_SECRET: dev-token.js <user> [roles,comma,separated]
const { SignJWT } = require('jose');
const [user, roles] = process.argv.slice(2);
const secret = process.env.JWT_SECRET;
if (!user || !secret) {
  console.error('usage: JWT_SECRET=... dev-token.js <user> [roles]');
  process.exit(2);
}
const claims = {};
if (roles) claims.roles = roles.split(',').filter(Boolean);
new SignJWT(claims)
  .setProtectedHeader({ alg: 'HS256' })
  .setSubject(user)
  .setIssuedAt()
  .setExpirationTime('24h')
  .sign(new TextEncoder().encode(secret))
  .then(
    (t) => console.log(t),
    (e) => {
      console.error(e.message);
      process.exit(1);
    },
  );
