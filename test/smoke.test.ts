import { test, expect } from "bun:test"; test("placeholder", () => expect(1).toBe(1));
