/** Seeded uniform [0, 1) numbers for tests (the project's PRNG). */
export { seededRandom as rng } from "../../src/rng.js";
