/** A stored setting as both stores keep it (one row per name) and its way back to the model. */
import type { StoredSetting } from './job-store.ts';

export interface SettingRow {
  name: string;
  value: string;
  version: number;
  updated_at: string;
  updated_by: string;
}

export function settingFromRow(row: SettingRow): StoredSetting {
  return {
    name: row.name,
    value: row.value,
    version: Number(row.version),
    updatedAt: row.updated_at,
    updatedBy: row.updated_by,
  };
}
