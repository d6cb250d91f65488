/** The project's seeded PRNG, used here for augmentation and episode splits (see src/rng.ts). */
export { Rng } from "../rng.js";
