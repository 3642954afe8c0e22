import type { CharmMeta } from './schema.js';
import type { ConfigValues } from './values.js';

/**
 * The image a container runs under an effective config: its single `image`, or the entry of
 * `images` picked by the value of its `image-option` (validation guarantees one exists for
 * every value the option may take).
 */
export function containerImage(meta: CharmMeta, container: string, config: ConfigValues): string {
  const c = Object.hasOwn(meta.containers, container) ? meta.containers[container] : undefined;
  if (!c) throw new Error(`charm.yaml has no container ${JSON.stringify(container)}`);
  if (c.image !== undefined) return c.image;
  const key = String(config[c.imageOption!]);
  const image = c.images?.[key];
  if (image === undefined) throw new Error(`container ${container}: no image for ${c.imageOption} ${key}`);
  return image;
}
