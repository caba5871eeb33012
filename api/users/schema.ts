import { z } from 'zod';
import { ROLES } from '../../shared/accounts/index.js';

const roleSchema = z.enum(ROLES, { message: 'must be admin, operator or user' });

export const newUserSchema = z.strictObject({
  email: z.email({ message: 'must be an e-mail address' }).max(254),
  role: roleSchema,
});

export const updateUserSchema = z
  .strictObject({ role: roleSchema.optional(), disabled: z.boolean().optional() })
  .refine((input) => input.role !== undefined || input.disabled !== undefined, { message: 'Give role, disabled or both', path: ['role'] });
