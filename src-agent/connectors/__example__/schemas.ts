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
  next_cursor: z.string().nullable(),
})
