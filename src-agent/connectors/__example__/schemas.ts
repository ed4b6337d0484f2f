import { z } from 'zod'

/** The `gtm-agent connect example --config file.json` file. */
export const exampleConfigSchema = z.object({
  baseUrl: z.string().url(),
  apiKey: z.string().min(1),
  /** Only for webhooks: the key the vendor signs them with (a secret config key). */
  webhookSigningKey: z.string().min(1).optional(),
})
export type ExampleConfig = z.infer<typeof exampleConfigSchema>

/** One contact as the vendor returns it. Parse vendor payloads: never trust their shape. */
export const exampleContactSchema = z.object({
  id: z.string(),
  email: z.string().nullable(),
  name: z.string().nullable(),
  updated_at: z.string(),
})
export type ExampleContact = z.infer<typeof exampleContactSchema>

/** One page of the vendor's contact list. */
export const examplePageSchema = z.object({
  contacts: z.array(exampleContactSchema),
  /** Where the next page (or, after the last, the next sync) starts. */
  next_cursor: z.string().nullable(),
  has_more: z.boolean(),
})

/** One meeting of a team. */
export const exampleMeetingSchema = z.object({
  id: z.string(),
  title: z.string(),
  contact_id: z.string().nullable(),
  started_at: z.string(),
})

/** One page of a team's meetings. */
export const exampleMeetingPageSchema = z.object({
  meetings: z.array(exampleMeetingSchema),
  next_cursor: z.string().nullable(),
  has_more: z.boolean(),
})

/** The teams: each team's meetings are a partition of the meetings stream. */
export const exampleTeamsSchema = z.object({ teams: z.array(z.object({ id: z.string() })) })

/** The fields the vendor says a record of a kind carries (custom ones included). */
export const exampleFieldsSchema = z.object({
  fields: z.array(
    z.object({ key: z.string(), label: z.string(), type: z.string(), custom: z.boolean() }),
  ),
})
