import type { ColumnDefinition } from './types.js';

/** Table columns as a real API server declares them (kubectl prints them as given). */
export function column(name: string, description: string, opts: Partial<ColumnDefinition> = {}): ColumnDefinition {
  return { name, type: 'string', format: '', description, priority: 0, ...opts };
}

export const NAME = column('Name', 'Name must be unique within a namespace.', { format: 'name' });
export const AGE = column(
  'Age',
  'CreationTimestamp is a timestamp representing the server time when this object was created. It is represented in RFC3339 form and is in UTC.',
);
