import { Router } from '@koa/router';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import type { ApiDeps } from '../../../src/http/context.ts';
import { openApiDocument } from '../../../src/http/openapi.ts';
import { accountRoutes } from '../../../src/http/routes/accounts.ts';
import { consoleApiRoutes } from '../../../src/http/routes/console.ts';
import { systemRoutes } from '../../../src/http/routes/system.ts';
import { holdRoutes } from '../../../src/http/routes/holds.ts';
import { transferRoutes } from '../../../src/http/routes/transfers.ts';

describe('openApiDocument', () => {
  it('should describe exactly the mounted routes when compared with the router', () => {
    const config = loadConfig({});
    // Registration only stores handlers; nothing in deps is called until a request comes.
    const deps = { config } as unknown as ApiDeps;
    const router = new Router();
    systemRoutes(router, deps);
    accountRoutes(router, deps);
    transferRoutes(router, deps);
    holdRoutes(router, deps);
    consoleApiRoutes(router, deps);
    const mounted = router.stack.flatMap((layer) =>
      layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${String(layer.path).replace(/:(\w+)/g, '{$1}')}`),
    );
    const document = openApiDocument(config) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    const described = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`),
    );

    expect(document.openapi).toBe('3.1.0');
    expect(described.sort()).toEqual(mounted.sort());
  });
});
