/** Jest projects: unit (no server), integration (real redis-server, several gateways),
 * e2e (whole processes behind HAProxy), chart (helm lint/template + schema validation), and
 * soak (the chaos soak of test/soak, `make soak`): listed only with SOAK=1, so a plain `jest`
 * run never starts it. */
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
    // The soak runs the services from a snapshot it compiles itself (test/soak/build.ts); its test
    // process only signs tokens, so test/e2e/cluster.ts gets a signer instead of test/helpers/cluster.ts
    // (which loads the services' code from the working tree, possibly mid-edit).
    ...(process.env.SOAK === '1'
      ? [
          {
            ...base,
            displayName: 'soak',
            testMatch: ['<rootDir>/test/soak/**/*.soak.ts'],
            moduleNameMapper: { '^\\.\\./helpers/cluster$': '<rootDir>/test/soak/token.ts' },
          },
        ]
      : []),
  ],
  testTimeout: 60000,
};
