import { z } from 'zod';

/** `llm` of `POST /api/bots`: `{model?, systemPrompt?, temperature?}` over the server's `LLM_*` endpoint. */
export const llmSettingsSchema = z.strictObject({
  model: z.string().trim().min(1).max(200).optional(),
  systemPrompt: z.string().max(8000).optional(),
  temperature: z.number().min(0).max(2).optional(),
});
