/** Jest projects: unit (no server), integration (real redis-server, several gateways),
 * e2e (whole processes behind HAProxy), chart (helm lint/template + schema validation). */
const base = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
  setupFilesAfterEnv: ['<rootDir>/test/setup/unhandled-rejections.ts'],
};
module.exports = {
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
    { ...base, displayName: 'chart', testMatch: ['<rootDir>/test/chart/**/*.test.ts'] },
  ],
  testTimeout: 60000,
};
