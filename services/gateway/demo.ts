import fs from 'fs';
import type http from 'http';
import path from 'path';
import { SignJWT } from 'jose';
import type { Config } from '../core/platform/config';
import { isValidUserId, USER_ID_RULE } from '../core/redis/keys';
import { readBody, sendJson } from '../core/platform/http';

/**
 * Serves the demo page at `/` and, only when DEV_LOGIN is on, `GET /dev/config` and `POST /dev/token`
 * for it to log in by name. With DEV_LOGIN off every `/dev/*` path is an unknown route (404, the
 * router's answer): nothing tells a visitor how the gateway authenticates.
 */
export function demoRoutes(cfg: Config) {
  let page: Buffer | undefined;
  const load = () => (page ??= fs.readFileSync(path.join(__dirname, 'public', 'index.html')));
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = (req.url ?? '/').split('?')[0];
    if (cfg.demoPage && req.method === 'GET' && (url === '/' || url === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }).end(load());
      return true;
    }
    if (!cfg.devLogin) return false;
    if (url === '/dev/config' && req.method === 'GET') {
      sendJson(res, 200, { devLogin: cfg.devLogin, authMode: cfg.authMode });
      return true;
    }
    if (url === '/dev/token' && req.method === 'POST') {
      let userId: unknown;
      try {
        userId = (JSON.parse((await readBody(req, 4096)).toString('utf8')) as { userId?: unknown }).userId;
      } catch {
        userId = undefined;
      }
      if (!isValidUserId(userId)) {
        sendJson(res, 400, { error: { code: 'bad_request', message: `userId: ${USER_ID_RULE}` } });
        return true;
      }
      const token = cfg.jwtSecret
        ? await new SignJWT({})
            .setProtectedHeader({ alg: 'HS256' })
            .setSubject(userId)
            .setIssuedAt()
            .setExpirationTime('24h')
            .sign(new TextEncoder().encode(cfg.jwtSecret))
        : null;
      sendJson(res, 200, { token, userId });
      return true;
    }
    return false;
  };
}
