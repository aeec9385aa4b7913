import { Elysia } from "elysia";
import type { AuthPlugin } from "../../http/auth";
import type { AppDeps } from "../../deps";
import { clientIp } from "../../http/client-ip";
import { memoryRateLimiters } from "../../http/rate-limit";
import { AuthModel } from "./model";
import type { UserRepository } from "./repository";
import { AuthService } from "./service";

/** POST /auth/register, POST /auth/login, GET /auth/me. */
export function authModule(deps: AppDeps, users: UserRepository, auth: AuthPlugin) {
  const limiters = deps.rateLimiters ?? memoryRateLimiters(() => deps.clock.now().getTime());
  const loginLimiter = limiters({ name: "login", max: deps.config.LOGIN_MAX_ATTEMPTS, windowSeconds: deps.config.LOGIN_WINDOW_SECONDS });
  const service = new AuthService(users, deps.config, deps.clock, loginLimiter);

  return new Elysia({ name: "auth", prefix: "/auth" })
    .use(auth)
    .post(
      "/register",
      async ({ body, issueToken, status }) => {
        const user = await service.register(body);
        return status(201, { token: await issueToken(user), user });
      },
      {
        body: AuthModel.register,
        response: { 201: AuthModel.session },
        detail: { summary: "Create an account (customer, restaurant or courier); 409 if the email exists", tags: ["auth"] },
      },
    )
    .post(
      "/login",
      async ({ body, issueToken, request, server }) => {
        const user = await service.login(body, clientIp(request, server, deps.config.TRUST_PROXY));
        return { token: await issueToken(user), user };
      },
      {
        body: AuthModel.login,
        response: { 200: AuthModel.session },
        detail: { summary: "Sign in; 401 on bad credentials, 429 with Retry-After when rate limited", tags: ["auth"] },
      },
    )
    .get("/me", ({ principal }) => service.me(principal.id), {
      auth: true,
      response: { 200: AuthModel.user },
      detail: { summary: "The signed-in user", tags: ["auth"], security: [{ bearer: [] }] },
    });
}
