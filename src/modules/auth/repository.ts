import { ObjectId, type Collection, type Db } from "mongodb";
import { isDuplicateKey, toObjectId } from "../../db/keys";
import { COLLECTIONS } from "../../db/mongo";
import { normalizeEmail, type AuthModel } from "./model";
import { RoleCache } from "./role-cache";

type UserDoc = {
  _id: ObjectId;
  /** Normalised (see normalizeEmail); the unique index makes emails case-insensitively unique. */
  email: string;
  name: string;
  role: AuthModel.role;
  passwordHash: string;
  createdAt: Date;
};

export type NewUser = { email: string; name: string; role: AuthModel.role; passwordHash: string; createdAt: Date };

/** A user with its password hash: only the auth service sees this. */
export type UserWithSecret = { user: AuthModel.user; passwordHash: string };

function toDomain(doc: UserDoc): AuthModel.user {
  return { id: doc._id.toHexString(), email: doc.email, name: doc.name, role: doc.role };
}

export async function ensureUserIndexes(db: Db): Promise<void> {
  await db.collection(COLLECTIONS.users).createIndex({ email: 1 }, { unique: true, name: "email_unique" });
}

export class UserRepository {
  private readonly col: Collection<UserDoc>;
  private readonly roles: RoleCache;

  /** `roleCacheMs`: how long a user's role read for a token check is reused (AUTH_ROLE_CACHE_MS; 0 = never). */
  constructor(db: Db, opts: { roleCacheMs?: number } = {}) {
    this.col = db.collection<UserDoc>(COLLECTIONS.users);
    this.roles = new RoleCache(opts.roleCacheMs ?? 0);
  }

  /** Inserts the user; null when the email is taken. */
  async insert(u: NewUser): Promise<AuthModel.user | null> {
    const doc: UserDoc = { _id: new ObjectId(), email: normalizeEmail(u.email), name: u.name, role: u.role, passwordHash: u.passwordHash, createdAt: u.createdAt };
    try {
      await this.col.insertOne(doc);
    } catch (err) {
      if (isDuplicateKey(err)) return null;
      throw err;
    }
    return toDomain(doc);
  }

  async findByEmail(email: string): Promise<UserWithSecret | null> {
    const doc = await this.col.findOne({ email: normalizeEmail(email) });
    return doc ? { user: toDomain(doc), passwordHash: doc.passwordHash } : null;
  }

  /**
   * The user's role as stored (at most `roleCacheMs` ago, or changed through this repository
   * since); null when there is no such user.
   */
  roleOf(id: string): Promise<AuthModel.role | null> {
    return this.roles.roleOf(id, async (userId) => {
      const _id = toObjectId(userId);
      if (!_id) return null;
      const doc = await this.col.findOne({ _id }, { projection: { _id: 0, role: 1 } });
      return doc?.role ?? null;
    });
  }

  /** Deletes a user (operators' tooling): its tokens stop working at once on this instance. False when there was none. */
  async remove(id: string): Promise<boolean> {
    const _id = toObjectId(id);
    if (!_id) return false;
    const { deletedCount } = await this.col.deleteOne({ _id });
    this.roles.forget(id);
    return deletedCount === 1;
  }

  /** Changes a user's role (operators' tooling): tokens carrying the old role stop working at once on this instance. */
  async setRole(id: string, role: AuthModel.role): Promise<boolean> {
    const _id = toObjectId(id);
    if (!_id) return false;
    const { matchedCount } = await this.col.updateOne({ _id }, { $set: { role } });
    this.roles.forget(id);
    return matchedCount === 1;
  }

  async findById(id: string): Promise<AuthModel.user | null> {
    const _id = toObjectId(id);
    if (!_id) return null;
    const doc = await this.col.findOne({ _id }, { projection: { passwordHash: 0 } });
    return doc ? toDomain(doc) : null;
  }
}
