import type { AppDeps } from "../../deps";
import type { Clock } from "../../clock";
import type { Config } from "../../config";
import { Conflict, RateLimited, Unauthorized } from "../../errors";
import { consumeAll, type RateLimiter } from "../../http/rate-limit";
import { normalizeEmail, type AuthModel } from "./model";
import type { UserRepository } from "./repository";

type HashCost = Pick<Config, "PASSWORD_HASH_MEMORY_KIB" | "PASSWORD_HASH_TIME_COST">;

function hashPassword(password: string, cost: HashCost): Promise<string> {
  return Bun.password.hash(password, { algorithm: "argon2id", memoryCost: cost.PASSWORD_HASH_MEMORY_KIB, timeCost: cost.PASSWORD_HASH_TIME_COST });
}

export class AuthService {
  /** Verified against for unknown emails, so a miss costs as long as a wrong password. */
  private decoyHash: Promise<string> | null = null;

  constructor(
    private readonly users: UserRepository,
    private readonly cost: HashCost,
    private readonly clock: Clock,
    private readonly loginLimiter: RateLimiter,
  ) {}

  async register(input: AuthModel.register): Promise<AuthModel.user> {
    const passwordHash = await hashPassword(input.password, this.cost);
    const user = await this.users.insert({ email: input.email, name: input.name, role: input.role, passwordHash, createdAt: this.clock.now() });
    if (!user) throw new Conflict("an account with this email already exists");
    return user;
  }

  /**
   * Checks the credentials. Attempts count per email and per IP before the password is
   * checked; a success is taken back so only failures use up the allowance.
   */
  async login(input: AuthModel.login, ip: string): Promise<AuthModel.user> {
    const keys = [`email:${normalizeEmail(input.email)}`, `ip:${ip}`];
    const decision = await consumeAll(this.loginLimiter, keys);
    if (!decision.allowed) {
      throw new RateLimited(`too many login attempts; retry in ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
    }
    const found = await this.users.findByEmail(input.email);
    this.decoyHash ??= hashPassword(crypto.randomUUID(), this.cost);
    const ok = await Bun.password.verify(input.password, found?.passwordHash ?? (await this.decoyHash));
    if (!found || !ok) throw new Unauthorized("email or password is incorrect");
    await Promise.all(keys.map((k) => this.loginLimiter.refund(k)));
    return found.user;
  }

  async me(userId: string): Promise<AuthModel.user> {
    const user = await this.users.findById(userId);
    if (!user) throw new Unauthorized("this account no longer exists");
    return user;
  }
}

/** Creates the ADMIN_EMAIL admin at start-up when no user has that email (API.md: no self-registered admins). */
export async function bootstrapAdmin(users: UserRepository, deps: Pick<AppDeps, "config" | "log" | "clock">): Promise<void> {
  const { ADMIN_EMAIL: email, ADMIN_PASSWORD: password } = deps.config;
  if (!email || !password) return;
  const existing = await users.findByEmail(email);
  if (existing) {
    if (existing.user.role !== "admin") deps.log.warn("ADMIN_EMAIL belongs to a non-admin account; not changing it", { userId: existing.user.id });
    return;
  }
  const passwordHash = await hashPassword(password, deps.config);
  const created = await users.insert({ email, name: "Administrator", role: "admin", passwordHash, createdAt: deps.clock.now() });
  // null: another instance created it between our read and write, which is just as good.
  if (created) deps.log.info("bootstrap admin created", { userId: created.id });
}
