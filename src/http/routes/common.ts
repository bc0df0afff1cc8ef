import { z } from 'zod';

/** `:id` of a given prefix; anything else is a 404-worthy miss, but malformed ids are 422. */
export const IdParam = (prefix: string) =>
  z.object({ id: z.string().regex(new RegExp(`^${prefix}_[0-9a-z]{32}$`), `a ${prefix}_… id`) });

/** `?limit=&starting_after=` of DESIGN.md §6. */
export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).optional(),
  starting_after: z
    .string()
    .regex(/^[a-z]{2,3}_[0-9a-z]{32}$/, 'an object id')
    .optional(),
});

/** The list envelope schema. */
export const listOf = <T extends z.ZodType>(item: T) =>
  z.object({ object: z.literal('list'), data: z.array(item), has_more: z.boolean() });
