/**
 * The named colours of blocks and zones, the fixed colours of everything else,
 * and the light that shades them. Names are what instructions say; the RGB
 * values are chosen to stay distinct at 64x64 under flat shading.
 */
export const COLORS = {
  red: [230, 45, 45],
  green: [50, 185, 60],
  blue: [45, 90, 235],
  yellow: [240, 215, 40],
  purple: [150, 70, 205],
  orange: [245, 135, 20],
} as const satisfies Record<string, readonly [number, number, number]>;

export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

export type Rgb = readonly [number, number, number];

export const TABLE_RGB: Rgb = [200, 190, 172];
export const BACKGROUND_RGB: Rgb = [38, 42, 52];
export const GRIPPER_BODY_RGB: Rgb = [62, 62, 72];
export const GRIPPER_FINGER_RGB: Rgb = [135, 135, 150];
export const SHADOW_RGB: Rgb = [95, 88, 80];

/** Zones are drawn as a pale version of their colour: this much table colour is mixed in. */
export const ZONE_TABLE_MIX = 0.4;

export function zoneRgb(name: ColorName): Rgb {
  const c = COLORS[name];
  const m = ZONE_TABLE_MIX;
  return [Math.round(c[0] * (1 - m) + TABLE_RGB[0] * m), Math.round(c[1] * (1 - m) + TABLE_RGB[1] * m), Math.round(c[2] * (1 - m) + TABLE_RGB[2] * m)];
}

/** Unit vector towards the light (world frame: x right, y away from the front camera, z up). */
export const LIGHT_DIR: readonly [number, number, number] = (() => {
  const v = [0.3, -0.6, 1.0];
  const n = Math.hypot(v[0] as number, v[1] as number, v[2] as number);
  return [(v[0] as number) / n, (v[1] as number) / n, (v[2] as number) / n] as const;
})();
/** Shade = AMBIENT + DIFFUSE * max(0, normal . light). */
export const AMBIENT = 0.45;
export const DIFFUSE = 0.55;
